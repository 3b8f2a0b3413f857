"""Fetch the official MPII, LSP, LSPET and COCO archives, and check a data folder.

- :mod:`~hgbench.data.download.catalogue`: what each dataset's archives are (URLs, sizes,
  checksums and where each source comes from) and the folder layout they produce;
- :mod:`~hgbench.data.download.fetch`: :func:`download`, resumable, verified, with a timeout
  per network read, and safe extraction (:func:`extract`);
- :mod:`~hgbench.data.download.inventory`: :func:`check`, what a data folder holds and lacks,
  asking each loader which files it needs.
"""

from hgbench.data.download.catalogue import CATALOGUE, DOWNLOADABLE, Archive, DatasetEntry, dataset_entry
from hgbench.data.download.fetch import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    ArchiveResult,
    DownloadError,
    NetworkFaultError,
    UnsafeArchiveError,
    check_download_request,
    check_network_options,
    check_tar_member,
    check_zip_member,
    download,
    extract,
    file_digest,
)
from hgbench.data.download.inventory import CheckRow, DatasetCheck, check

__all__ = [
    "CATALOGUE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT_S",
    "DOWNLOADABLE",
    "Archive",
    "ArchiveResult",
    "CheckRow",
    "DatasetCheck",
    "DatasetEntry",
    "DownloadError",
    "NetworkFaultError",
    "UnsafeArchiveError",
    "check",
    "check_download_request",
    "check_network_options",
    "check_tar_member",
    "check_zip_member",
    "dataset_entry",
    "download",
    "extract",
    "file_digest",
]
