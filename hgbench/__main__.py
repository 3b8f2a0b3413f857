"""``python -m hgbench``: the command line (:data:`hgbench.cli.app`), also as torchrun's module
(``torchrun --nproc-per-node N -m hgbench train VARIANT ...``: one process per rank, each
running this command; :mod:`hgbench.train.distributed` reads the ranks)."""

from hgbench.cli import app

if __name__ == "__main__":
    app(prog_name="hgbench")
