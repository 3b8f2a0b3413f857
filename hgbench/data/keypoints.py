"""Keypoint layouts: joint names, left/right flip pairs, report groups and PCK normalisers.

Each dataset names its :class:`KeypointSet`; models take their number of heatmaps from it
(``num_joints``), augmentation swaps ``flip_pairs`` when it mirrors an image, and reports
group joints into the columns the papers print (Head, Shoulder, Elbow, Wrist, Hip, Knee,
Ankle).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeypointSet:
    """A dataset's joint layout.

    Attributes:
        name: layout name (``"lsp"``, ``"mpii"``).
        names: joint names in the annotation's order; ``len(names)`` heatmaps per model.
        flip_pairs: ``(left, right)`` index pairs swapped by a horizontal flip.
        groups: report column -> joint indices pooled into it (left and right together).
        torso_pairs: joint index pairs whose distance is the PCK normaliser, in order of
            preference (the first pair whose two joints are annotated is used).
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    groups: dict[str, tuple[int, ...]]
    torso_pairs: tuple[tuple[int, int], ...]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def flip_permutation(self) -> list[int]:
        """``perm[j]``: index of the joint that joint ``j`` becomes after a horizontal flip."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


# LSP / LSPET order, from the dataset's README.txt (Johnson & Everingham, CVPR 2011).
LSP = KeypointSet(
    name="lsp",
    names=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "neck",
        "head_top",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    groups={
        "Head": (12, 13),  # neck and head top: LSP has no separate upper-neck/head split
        "Shoulder": (8, 9),
        "Elbow": (7, 10),
        "Wrist": (6, 11),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
    },
    # Torso size = distance from the right shoulder to the left hip; the other diagonal
    # (left shoulder to right hip) where one of those is not annotated.
    torso_pairs=((8, 3), (9, 2)),
)

# MPII order, from the MPII Human Pose annotation (Andriluka et al., CVPR 2014).
MPII = KeypointSet(
    name="mpii",
    names=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "thorax",
        "upper_neck",
        "head_top",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    groups={
        "Head": (8, 9),
        "Shoulder": (12, 13),
        "Elbow": (11, 14),
        "Wrist": (10, 15),
        "Hip": (2, 3),
        "Knee": (1, 4),
        "Ankle": (0, 5),
    },
    torso_pairs=((12, 3), (13, 2)),
)

# COCO person keypoints order, from the "person" category's ``keypoints`` list of the COCO
# 2017 annotation files (Lin et al., ECCV 2014); flip pairs as in the common top-down code
# (microsoft/human-pose-estimation.pytorch lib/dataset/coco.py ``flip_pairs``, which lists
# them 0-based as [1, 2], [3, 4], ... [15, 16]).
COCO = KeypointSet(
    name="coco",
    names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    groups={
        "Head": (0, 1, 2, 3, 4),  # nose, eyes and ears: COCO has no head top or neck
        "Shoulder": (5, 6),
        "Elbow": (7, 8),
        "Wrist": (9, 10),
        "Hip": (11, 12),
        "Knee": (13, 14),
        "Ankle": (15, 16),
    },
    # Torso diagonals as for LSP (right shoulder to left hip first); COCO's own accuracy
    # (OKS, seed 003's PCK) does not use them.
    torso_pairs=((6, 11), (5, 12)),
)

KEYPOINT_SETS = {k.name: k for k in (LSP, MPII)}
KEYPOINT_SETS[COCO.name] = COCO
