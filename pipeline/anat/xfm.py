"""ANTs transform files: inverse of a linear transform, composition of a chain
into one displacement field, and writing that field as an ITK HDF5 composite
transform (``.h5``), the format every consumer passes to
``ants.apply_transforms(transformlist=[path])``.

ANTs' point-mapping convention is used throughout: a transform list given to
``ants.apply_transforms(fixed, moving, [A, B])`` maps a point of ``fixed``
first through ``B`` then through ``A`` to ``moving`` (a "pull-back").
(``ants.apply_transforms_to_points`` applies a list first element first.)

A list that mixes a composite ``.h5`` written by ``ants.registration`` with
other transforms was measured not to apply that chain; such chains are
composed point by point instead (:func:`grid_points`, :func:`sample_field`,
:func:`write_field`; see :func:`pipeline.anat.register.chain_through_baseline`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def linear_matrix(path) -> tuple[np.ndarray, np.ndarray]:
    """(3x3 matrix, translation) of an ANTs linear transform file, LPS mm.

    The transform maps ``y = M @ x + t`` (points of the fixed image to the
    moving image).
    """
    import ants

    tx = ants.read_transform(str(path))
    origin = np.asarray(tx.apply_to_point([0.0, 0.0, 0.0]))
    cols = [np.asarray(tx.apply_to_point(list(e))) - origin for e in np.eye(3)]
    return np.stack(cols, axis=1), origin


def write_inverse_linear(path, out) -> str:
    """Write the inverse of an ANTs linear transform as an ``AffineTransform``.

    (``ANTsTransform.invert`` returns a type ITK cannot write.)
    """
    import ants

    matrix, offset = linear_matrix(path)
    inv = np.linalg.inv(matrix)
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    matrix=inv, offset=-inv @ offset)
    ants.write_transform(tx, str(out))
    return str(out)


def write_displacement_h5(field, out) -> None:
    """Write a displacement-field ANTsImage as an ITK HDF5 composite transform.

    Parameters
    ----------
    field : ANTsImage
        3-component vector image (LPS displacements, mm) on the grid of the
        space the transform pulls back from.
    out : path
        ``.h5`` file, readable by ``ants.apply_transforms`` and antsApplyTransforms.
        Written to a temporary ``.h5`` beside it, then renamed (atomic).

    Notes
    -----
    ``ants.write_transform`` cannot write the ``DisplacementFieldTransform``
    of ``ants.transform_from_displacement_field`` itself (antspyx 0.6.3 has no
    binding for its type); wrapped by ``ants.compose_ants_transforms`` it is
    written by ITK's HDF5TransformIO (chosen by the ``.h5`` ending) as
    ``/TransformGroup/0`` ``CompositeTransform_double_3_3`` and
    ``/TransformGroup/1`` ``DisplacementFieldTransform_double_3_3``, whose
    fixed parameters are the field's size, origin, spacing and direction.
    """
    import ants

    transform = ants.compose_ants_transforms([ants.transform_from_displacement_field(field)])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out).with_name(f".{Path(out).name}.tmp.h5")
    ants.write_transform(transform, str(tmp))
    tmp.replace(out)


def displacement_field(reference, transformlist):
    """ANTs transforms composed by ANTs into one displacement-field ANTsImage
    on the grid of ``reference`` (the "fixed" space whose points they map).

    ``transformlist``: ANTs transform files in ``apply_transforms`` order
    (none inverted); see the module note on composite ``.h5`` files.
    """
    import ants

    with tempfile.TemporaryDirectory() as tmp:
        path = ants.apply_transforms(fixed=reference, moving=reference,
                                     transformlist=[str(t) for t in transformlist],
                                     compose=str(Path(tmp) / "field_"))
        return ants.image_read(path)


def compose_to_h5(reference, transformlist, out) -> None:
    """:func:`displacement_field` written as ``.h5`` (:func:`write_displacement_h5`)."""
    write_displacement_h5(displacement_field(reference, transformlist), out)


def grid_points(image) -> np.ndarray:
    """LPS coordinates (mm) of the voxel centres of an ANTsImage, (N, 3), C order."""
    idx = np.indices(image.shape, dtype=np.float32).reshape(3, -1).T
    direction = np.asarray(image.direction, float)
    return (np.asarray(image.origin) + (idx * np.asarray(image.spacing)) @ direction.T)


def sample_field(field, points: np.ndarray) -> np.ndarray:
    """Trilinear displacement of ``field`` (ANTsImage, LPS mm) at LPS ``points``;
    zero outside the field's grid, as ITK's DisplacementFieldTransform."""
    from scipy import ndimage

    direction = np.asarray(field.direction, float)
    idx = ((points - np.asarray(field.origin)) @ np.linalg.inv(direction).T
           / np.asarray(field.spacing))
    arr = field.numpy()
    return np.stack([ndimage.map_coordinates(arr[..., k], idx.T, order=1, mode="constant",
                                             cval=0.0) for k in range(3)], axis=-1)


def write_field(reference, displacement: np.ndarray, out) -> None:
    """Write displacements (LPS mm, (N, 3) in :func:`grid_points` order) of the
    voxel centres of ``reference`` as a displacement-field ``.h5``."""
    import ants

    disp = displacement.reshape(*reference.shape, 3).astype(np.float32)
    field = ants.from_numpy(disp, origin=list(reference.origin), spacing=list(reference.spacing),
                            direction=np.asarray(reference.direction), has_components=True)
    write_displacement_h5(field, out)
