"""What each dataset's official archives are: file names, URLs, sizes, checksums, where they go.

Layout under ``DIR`` (what ``--data-root`` of each loader points at)::

    DIR/mpii/images/*.jpg                       mpii_human_pose_v1.tar.gz
    DIR/mpii/annot/{train,valid}.h5             stacked-hourglass annotations (pose-hg-train)
    DIR/mpii/annotations/mpii_{train,val}.json  optional: the JSON layout (mmpose)
    DIR/lsp/{joints.mat,images/}                lsp_dataset.zip
    DIR/lspet/{joints.mat,images/}              lspet_dataset.zip
    DIR/coco/annotations/person_keypoints_{train,val}2017.json
    DIR/coco/val2017/*.jpg                      (train2017/ optional: 19 GB)

Checksums: none of these publishers prints one. The COCO md5 values are the ones that
independent download scripts (MLCommons, torchvision-style loaders, many training repos)
all agree on, and the annotation archive's md5 equals the S3 ``ETag`` its server sends; the
MPII, LSP and LSPET archives have no known checksum, so only their size (where known) is
checked and the download is reported as *not verified*.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archive:
    """One file to fetch.

    Attributes:
        name: file name on the server (and on disk).
        urls: where to fetch it, tried in order (the first is the publisher's).
        dest: folder under ``DIR`` it extracts to (``kind`` ``"file"``: where it is stored).
        kind: ``"zip"``, ``"tar"`` (any compression tarfile reads) or ``"file"`` (kept as is).
        size: bytes, or None where unknown.
        md5, sha256: hex digest, or None where nobody publishes one (then only ``size``).
        checksum_source: where ``size``/digest come from, or why there is none.
        expect: a path relative to ``dest`` that the extracted archive provides; when the
            archive wraps its content in one extra folder, that folder is flattened away.
        provides: what the loaders read from it.
        optional: fetched only with ``include_optional`` (``--all``).
    """

    name: str
    urls: tuple[str, ...]
    dest: str
    kind: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    checksum_source: str = "none published"
    expect: str | None = None
    provides: str = ""
    optional: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset: its archives, home page and the citation its publisher asks for."""

    name: str
    title: str
    homepage: str
    cite: str
    archives: tuple[Archive, ...]


_COCO_MD5 = "md5 not printed on cocodataset.org; the value independent download scripts (MLCommons and others) agree on"
_HG_ANNOT = "https://raw.githubusercontent.com/princeton-vl/pose-hg-train/master/data/mpii/annot/"

#: The official archives (data, not code). URLs and sizes: the publishers' download pages and
#: the scripts that use them; see the module docstring for the checksums.
CATALOGUE: dict[str, DatasetEntry] = {
    "mpii": DatasetEntry(
        "mpii",
        "MPII Human Pose",
        "http://human-pose.mpi-inf.mpg.de/#download",
        "Andriluka et al., 2D Human Pose Estimation: New Benchmark and State of the Art Analysis, CVPR 2014",
        (
            Archive(
                "mpii_human_pose_v1.tar.gz",
                ("https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1.tar.gz",),
                "mpii",
                "tar",
                None,
                checksum_source="none published, size not published (about 12.9 GB)",
                expect="images",
                provides="images/NNNNNNNNN.jpg: the 24,984 images (train, validation and test)",
            ),
            Archive(
                "train.h5",
                (_HG_ANNOT + "train.h5",),
                "mpii/annot",
                "file",
                provides="stacked-hourglass training annotations (imgname, center, scale, part, visible, normalize)",
            ),
            Archive(
                "valid.h5",
                (_HG_ANNOT + "valid.h5",),
                "mpii/annot",
                "file",
                provides="the 2,958-person validation split of Tompson et al. in the same layout",
            ),
            Archive(
                "mpii_annotations.tar",
                ("https://download.openmmlab.com/mmpose/datasets/mpii_annotations.tar",),
                "mpii/annotations",
                "tar",
                expect="mpii_val.json",
                provides="optional JSON layout (image, center, scale, joints, joints_vis): mpii_{train,val}.json, "
                "mpii_gt_val.mat",
                optional=True,
            ),
        ),
    ),
    "lsp": DatasetEntry(
        "lsp",
        "Leeds Sports Pose (LSP)",
        "http://sam.johnson.io/research/lsp.html",
        "Johnson & Everingham, Clustered Pose and Nonlinear Appearance Models for Human Pose Estimation, BMVC 2010",
        (
            Archive(
                "lsp_dataset.zip",
                (
                    "http://sam.johnson.io/research/lsp_dataset.zip",
                    "http://www.comp.leeds.ac.uk/mat4saj/lsp_dataset.zip",
                ),
                "lsp",
                "zip",
                expect="joints.mat",
                provides="joints.mat (3, 14, 2000) and images/im0001.jpg..im2000.jpg",
            ),
        ),
    ),
    "lspet": DatasetEntry(
        "lspet",
        "Leeds Sports Pose Extended (LSPET)",
        "http://sam.johnson.io/research/lspet.html",
        "Johnson & Everingham, Learning Effective Human Pose Estimation from Inaccurate Annotation, CVPR 2011",
        (
            Archive(
                "lspet_dataset.zip",
                (
                    "http://sam.johnson.io/research/lspet_dataset.zip",
                    "http://www.comp.leeds.ac.uk/mat4saj/lspet_dataset.zip",
                ),
                "lspet",
                "zip",
                expect="joints.mat",
                provides="joints.mat (14, 3, 10000) and images/im00001.jpg..im10000.jpg",
            ),
        ),
    ),
    "coco": DatasetEntry(
        "coco",
        "COCO 2017 person keypoints",
        "https://cocodataset.org/#download",
        "Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
        (
            Archive(
                "annotations_trainval2017.zip",
                ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
                "coco",
                "zip",
                252_907_541,
                md5="f4bbac642086de4f52a3fdda2de5fa2c",
                checksum_source=_COCO_MD5 + "; equals the server's ETag",
                expect="annotations",
                provides="annotations/person_keypoints_{train,val}2017.json (and the other COCO tasks)",
            ),
            Archive(
                "val2017.zip",
                ("http://images.cocodataset.org/zips/val2017.zip",),
                "coco",
                "zip",
                815_585_330,
                md5="442b8da7639aecaf257c1dceb8ba8c80",
                checksum_source=_COCO_MD5,
                expect="val2017",
                provides="val2017/: the 5,000 validation images",
            ),
            Archive(
                "train2017.zip",
                ("http://images.cocodataset.org/zips/train2017.zip",),
                "coco",
                "zip",
                19_336_861_798,
                md5="cced6f7f71b7629ddf16f17bbcfab6b2",
                checksum_source=_COCO_MD5,
                expect="train2017",
                provides="train2017/: the 118,287 training images",
                optional=True,
            ),
        ),
    ),
}

DOWNLOADABLE = tuple(CATALOGUE)


def dataset_entry(dataset: str, catalogue: dict[str, DatasetEntry] | None = None) -> DatasetEntry:
    """The entry of ``dataset`` in ``catalogue`` (default :data:`CATALOGUE`).

    Raises:
        ValueError: unknown dataset (the message lists the known ones).
    """
    catalogue = CATALOGUE if catalogue is None else catalogue
    if dataset not in catalogue:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(catalogue)}")
    return catalogue[dataset]
