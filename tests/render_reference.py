"""Independent reference renders for tests: trimesh ray casting through pixel centres, and plain
dense numpy versions of the soft variants."""

import math

import numpy as np
import trimesh


def ray_cast(mesh: trimesh.Trimesh, camera, height: int, width: int):
    """First hit of the ray through each pixel centre ``(u, v) = (col, row)``.

    Returns ``(hit [H, W] bool, depth [H, W] camera-frame z, face [H, W] int, -1 on miss)``.
    """
    rot = np.asarray(camera.rotation, np.float64)
    t = np.asarray(camera.translation, np.float64)
    focal = float(camera.focal)
    px, py = np.asarray(camera.principal, np.float64)
    centre = -rot.T @ t
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    d_cam = np.stack([(cols - px) / focal, (rows - py) / focal, np.ones(cols.shape)], -1).reshape(-1, 3)
    d_world = d_cam @ rot  # rot.T @ d for each row
    origins = np.repeat(centre[None], len(d_world), 0)
    locations, ray_index, tri_index = mesh.ray.intersects_location(origins, d_world, multiple_hits=False)
    hit = np.zeros(height * width, bool)
    depth = np.zeros(height * width)
    face = -np.ones(height * width, np.int64)
    hit[ray_index] = True
    depth[ray_index] = ((locations - centre) @ rot.T)[:, 2]
    face[ray_index] = tri_index
    return hit.reshape(height, width), depth.reshape(height, width), face.reshape(height, width)


def interior(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has a uniform ``mask`` value (away from edges)."""
    padded = np.pad(mask, 1, mode="edge")
    same = np.ones(mask.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]] == mask
    return same


# ---------------------------------------------------------------------------------------------------
# Plain dense numpy references of the soft variants: every pixel against every face (or vertex
# kernel), float64, loops over pixels, written from the variants' formulas rather than their code.


def project_np(vertices, camera):
    """``(x, y, z)`` ``[V]`` each: pixel coordinates and camera-frame depth of every vertex."""
    rot = np.asarray(camera.rotation, np.float64)
    cam = np.asarray(vertices, np.float64) @ rot.T + np.asarray(camera.translation, np.float64)
    focal = float(camera.focal)
    px, py = (float(c) for c in np.asarray(camera.principal))
    return px + focal * cam[:, 0] / cam[:, 2], py + focal * cam[:, 1] / cam[:, 2], cam[:, 2]


def _segment_dist_sq(ax, ay, bx, by, u, v):
    ex, ey = bx - ax, by - ay
    len_sq = ex * ex + ey * ey
    t = np.clip(((u - ax) * ex + (v - ay) * ey) / np.where(len_sq > 0, len_sq, 1.0), 0.0, 1.0)
    return (u - ax - t * ex) ** 2 + (v - ay - t * ey) ** 2


def _face_terms(x, y, z, faces, u, v):
    """Screen barycentrics ``[F, 3]``, inside ``[F]`` and squared boundary distance ``[F]`` of
    pixel centre ``(u, v)`` in every face."""
    fx, fy = x[faces], y[faces]
    area2 = (fx[:, 1] - fx[:, 0]) * (fy[:, 2] - fy[:, 0]) - (fy[:, 1] - fy[:, 0]) * (fx[:, 2] - fx[:, 0])
    bary = np.stack(
        [
            ((fx[:, j] - u) * (fy[:, k] - v) - (fx[:, k] - u) * (fy[:, j] - v)) / area2
            for j, k in ((1, 2), (2, 0), (0, 1))
        ],
        1,
    )
    dist = np.min(
        [_segment_dist_sq(fx[:, a], fy[:, a], fx[:, b], fy[:, b], u, v) for a, b in ((0, 1), (1, 2), (2, 0))],
        0,
    )
    return bary, np.all(bary >= 0, 1), dist


def _valid_faces(x, y, z, faces, near, min_area=1e-6):
    fx, fy = x[faces], y[faces]
    area2 = (fx[:, 1] - fx[:, 0]) * (fy[:, 2] - fy[:, 0]) - (fy[:, 1] - fy[:, 0]) * (fx[:, 2] - fx[:, 0])
    return np.all(z[faces] > near, 1) & (np.abs(area2) > min_area)


def dense_soft(
    vertices,
    faces,
    camera,
    height,
    width,
    attributes,
    table,
    sigma,
    gamma,
    near,
    far,
    background_depth=1e-3,
    threshold=1e-4,
):
    """SoftRas (the ``soft`` variant): ``(features [H, W, C], values [H, W], silhouette, depth)``."""
    x, y, z = project_np(vertices, camera)
    keep = _valid_faces(x, y, z, faces, near)
    faces = faces[keep]
    out = [
        np.zeros((height, width, attributes.shape[1])),
        np.zeros((height, width)),
        np.zeros((height, width)),
        np.zeros((height, width)),
    ]
    for row in range(height):
        for col in range(width):
            bary, inside, dist = _face_terms(x, y, z, faces, col, row)
            cover = 0.5 * (1 + np.tanh(0.5 * np.where(inside, dist, -dist) / sigma))  # sigmoid, no overflow
            live = cover > threshold
            if not live.any():
                continue
            b = np.clip(bary[live], 0, 1)
            b = b / b.sum(1, keepdims=True)
            inv_z = 1 / z[faces[live]]
            inv_depth = np.sum(b * inv_z, 1)
            depth = 1 / inv_depth
            b = b * inv_z / inv_depth[:, None]  # perspective-correct
            zn = (far - depth) / (far - near)
            m = max(background_depth, zn.max())
            e = cover[live] * np.exp((zn - m) / gamma)
            wts = e / (e.sum() + np.exp((background_depth - m) / gamma))
            fl = faces[live]
            out[0][row, col] = np.einsum("f,fk,fkc->c", wts, b, attributes[fl])
            out[1][row, col] = np.einsum("f,fk,fk->", wts, b, table[fl, row * width + col])
            out[2][row, col] = 1 - np.prod(1 - cover[live])
            out[3][row, col] = np.sum(wts * depth) / wts.sum()
    return out


def dense_pytorch3d(
    vertices, faces, camera, height, width, attributes, table, k, sigma, gamma, radius, near, far
):
    """PyTorch3D's rasterize_meshes + softmax_rgb_blend (the ``pytorch3d`` variant), all faces per
    pixel: ``(features, values, coverage, depth)``."""
    x, y, z = project_np(vertices, camera)
    faces = faces[_valid_faces(x, y, z, faces, near)]
    eps = 1e-10
    out = [
        np.zeros((height, width, attributes.shape[1])),
        np.zeros((height, width)),
        np.zeros((height, width)),
        np.zeros((height, width)),
    ]
    for row in range(height):
        for col in range(width):
            bary, inside, dist = _face_terms(x, y, z, faces, col, row)
            fz = z[faces]
            top = np.stack(
                [
                    bary[:, 0] * fz[:, 1] * fz[:, 2],
                    bary[:, 1] * fz[:, 0] * fz[:, 2],
                    bary[:, 2] * fz[:, 0] * fz[:, 1],
                ],
                1,
            )
            b = top / np.maximum(top.sum(1, keepdims=True), 1e-8)
            b = np.maximum(b, 0)
            b = b / np.maximum(b.sum(1, keepdims=True), 1e-8)
            depth = np.sum(b * fz, 1)
            signed = np.where(inside, -dist, dist)
            cand = np.flatnonzero(inside | (signed < radius**2))
            if cand.size == 0:
                continue
            cand = cand[np.argsort(depth[cand], kind="stable")][:k]
            prob = 0.5 * (1 - np.tanh(0.5 * signed[cand] / sigma))  # sigmoid(-signed / sigma)
            zi = (far - depth[cand]) / (far - near)
            zmax = max(zi.max(), eps)
            wts = prob * np.exp((zi - zmax) / gamma)
            delta = max(np.exp((eps - zmax) / gamma), eps)
            blend = wts / (wts.sum() + delta)
            fc = faces[cand]
            out[0][row, col] = np.einsum("f,fk,fkc->c", blend, b[cand], attributes[fc])
            out[1][row, col] = np.einsum("f,fk,fk->", blend, b[cand], table[fc, row * width + col])
            out[2][row, col] = 1 - np.prod(1 - prob)
            out[3][row, col] = np.sum(wts * depth[cand]) / wts.sum() if wts.sum() > 0 else 0.0
    return out


def dense_gaussian(
    vertices, faces, camera, height, width, attributes, table, coverage, threshold, k, tau, near
):
    """VoGE's vertex Gaussians (the ``gaussian`` variant), every kernel per pixel:
    ``(features, values, coverage, depth)``."""
    erf = np.vectorize(math.erf)
    vertices = np.asarray(vertices, np.float64)
    total, count = np.zeros(len(vertices)), np.zeros(len(vertices))
    for face in faces:  # mean length of the edges of a vertex's faces
        for i in range(3):
            a, b, c = face[i], face[(i + 1) % 3], face[(i + 2) % 3]
            total[a] += np.linalg.norm(vertices[b] - vertices[a]) + np.linalg.norm(vertices[c] - vertices[a])
            count[a] += 2
    has_face = count > 0
    lam = 4 * np.log(1 / coverage) / np.where(has_face, total / np.maximum(count, 1), 1.0) ** 2
    reach = np.sqrt(np.log(1 / threshold) / lam)
    rot = np.asarray(camera.rotation, np.float64)
    centre = vertices @ rot.T + np.asarray(camera.translation, np.float64)
    ok = has_face & (centre[:, 2] - reach > near)
    focal = float(camera.focal)
    px, py = (float(c) for c in np.asarray(camera.principal))
    out = [
        np.zeros((height, width, attributes.shape[1])),
        np.zeros((height, width)),
        np.zeros((height, width)),
        np.zeros((height, width)),
    ]
    for row in range(height):
        for col in range(width):
            d = np.array([(col - px) / focal, (row - py) / focal, 1.0])
            d /= np.linalg.norm(d)
            peak = centre @ d
            act = lam * np.sum((centre - peak[:, None] * d) ** 2, 1)
            cand = np.flatnonzero(ok & (act < np.log(1 / threshold)) & (peak > 0))
            if cand.size == 0:
                continue
            cand = cand[np.argsort(peak[cand], kind="stable")][:k]
            dens = np.exp(-act[cand])
            before = 0.5 * (
                1 + erf((peak[cand][:, None] - peak[cand][None, :]) * np.sqrt(lam[cand])[None, :])
            )
            wts = np.exp(-tau * (before * dens[None, :]).sum(1)) * dens / np.exp(-0.5)
            out[0][row, col] = wts @ attributes[cand]
            out[1][row, col] = wts @ table[cand, row * width + col]
            out[2][row, col] = min(wts.sum(), 1.0)
            out[3][row, col] = np.sum(wts * peak[cand] * d[2]) / wts.sum()
    return out
