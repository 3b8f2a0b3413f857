"""The bottleneck autoencoder of Andersen (bachelor thesis, 2021, seed
``003_c160231480bcc829.txt``, section 7.2 and Figure 22).

The figure's layers are not in the text; the author's code
(AndreOskarAndersen/bachelor_thesis ``code/AE.py``) fixes them: three 3x3 "same" convolutions
squeeze the channels 256 -> 192 -> 128 -> 64 at the bottleneck's resolution, a linear layer
maps the flattened ``64 x s x s`` features to the latent (50), a linear layer maps back, and
three 3x3 transposed convolutions (stride 1, padding 1: they act as convolutions that only
change the channel count) go 64 -> 128 -> 192 -> 256. Every layer is followed by a ReLU,
the output included ("it makes the autoencoder be in the same range as the Stacked
Hourglass", section 7.2).

The linear layers fix the bottleneck's spatial side ``s`` (4 for the paper's 256-pixel input
and a depth-4 hourglass after the stride-4 stem): the module is built for one side and
raises ``ValueError`` on any other. The denoising noise of phase 1 is not part of the module
(see :mod:`hgbench.train.pretrain`), so eager, traced and exported graphs are the same function.
"""

from __future__ import annotations

from torch import Tensor, nn

#: channel widths of the encoder's convolutions after the input (the decoder mirrors them)
AE_CHANNELS = (192, 128, 64)


class BottleneckAutoencoder(nn.Module):
    """Undercomplete autoencoder on ``(B, channels, size, size)`` bottleneck features.

    Parameters (closed form, ``c = channels``, ``s = size``, ``d = latent_dim``)::

        encoder convs  9*c*192 + 192 + 9*192*128 + 128 + 9*128*64 + 64
        linears        64*s*s*d + d + d*64*s*s + 64*s*s
        decoder convs  9*64*128 + 128 + 9*128*192 + 192 + 9*192*c + c

    Shapes: ``(B, channels, size, size) -> (B, channels, size, size)``.

    Raises:
        ValueError: at construction for a non-positive size or latent; in ``forward`` for an
            input whose channels or spatial side differ from the ones it was built for.
    """

    def __init__(self, channels: int = 256, size: int = 4, latent_dim: int = 50) -> None:
        super().__init__()
        if size < 1 or latent_dim < 1:
            raise ValueError(f"BottleneckAutoencoder: size and latent_dim must be >= 1, got {size}, {latent_dim}")
        self.channels, self.size, self.latent_dim = channels, size, latent_dim
        c1, c2, c3 = AE_CHANNELS
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, c1, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip
        flat = c3 * size * size
        self.encoder_linear = nn.Sequential(nn.Linear(flat, latent_dim), nn.ReLU(inplace=True))
        self.decoder_linear = nn.Sequential(nn.Linear(latent_dim, flat), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c2, c1, 3, padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(c1, channels, 3, padding=1), nn.ReLU(inplace=True),
        )  # fmt: skip

    def _check(self, x: Tensor) -> None:
        # Static shapes under jit.trace/export: a plain Python check, no graph op.
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[2] != self.size or x.shape[3] != self.size:
            raise ValueError(
                f"BottleneckAutoencoder: expected (B, {self.channels}, {self.size}, {self.size}) bottleneck features, "
                f"got {tuple(x.shape)}; the autoencoder's linear layers fix the bottleneck side, so the network only "
                f"takes inputs of the size it was built for (architecture.input_size / the protocol's input_size)"
            )

    def encode(self, x: Tensor) -> Tensor:
        """``(B, C, s, s)`` -> latent ``(B, latent_dim)``."""
        self._check(x)
        return self.encoder_linear(self.encoder(x).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        """Latent ``(B, latent_dim)`` -> ``(B, C, s, s)``."""
        h = self.decoder_linear(z).reshape(z.shape[0], AE_CHANNELS[-1], self.size, self.size)
        return self.decoder(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
