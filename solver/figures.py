"""Figures of the species presets: for the lifted ReLU problems (``relu-circle``,
``relu-sphere``) the densities ν± over time against the teacher and the particles, and the
excess energy against m; for sparse deconvolution (``deconvolution-1d``, ``-2d``) ν± on the
torus against the spikes (:func:`torus_density`); for the implicit bias of classification
(``benchmarks/implicit_bias.py``) the predictors in the input plane as in seed 001
(:func:`input_plane_predictors`) and the normalized margins against t and m
(:func:`margin_curves`, :func:`margins_against_m`).

The seeds' illustration (Chizat–Bach 2018, Figure 1) draws each neuron w = (a, b) as the
point |b|·a of the input plane, coloured by the sign of b; the teacher's neurons are drawn
the same way. On balanced neurons |b|·a = |a|² s, so the distance of a particle from the
origin is its lifted mass per unit weight and its direction is s: the picture of ν± as
atoms. The densities are drawn beside it as functions of the angle.

Every function takes the output path and writes one PNG with matplotlib's Agg backend.
"""

import numpy as np

PLUS, MINUS = "tab:red", "tab:blue"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _teacher_points(teacher):
    """|b|·a and the signs of the teacher's rows (a, b)."""
    teacher = np.asarray(teacher, dtype=float)
    return np.abs(teacher[:, -1:]) * teacher[:, :-1], np.sign(teacher[:, -1])


def circle_density(path, angles, times, densities, teacher=None, particles=None, title=None):
    """The densities ν± on the circle at ``times`` (top: in the plane, bottom: against the angle).

    Top row, one panel per time: the unit circle, ν± drawn as the radial curves
    r(φ) = 1 + ν±(φ)/max ν (the maximum over all times and both species; ν+ red, ν− blue,
    with their masses in the legend), the teacher's neurons as stars at |b|·a on dashed
    rays, and, if given, the particles at |b|·a coloured by the sign of b. A neuron alone
    on a teacher direction carries the teacher's mass c with weight 1/m, so it sits at
    |b|·a = |a|² = mc, far beyond the teacher's star: the particles are drawn at
    |b|·a times one factor, the same for every panel (in the title), that puts the farthest
    at radius 2. Bottom: ν+(φ) and −ν−(φ) at every time (darker is later) with the
    teacher's angles as dashed lines.

    Parameters
    ----------
    path : path-like
        The PNG to write.
    angles : array (K,)
        The cell centres φ_k of the circle grid (equal cells covering [0, 2π)).
    times : array (T,)
    densities : array (T, 2, K)
        ν+ and ν− per unit angle at the cells.
    teacher : array (m0, 3), optional
        The teacher's rows (a, b).
    particles : sequence of arrays (m, 3), optional
        The neurons (a, b) at the same times.
    title : str, optional
    """
    plt = _pyplot()
    angles = np.asarray(angles, dtype=float).reshape(-1)
    weights = np.full(len(angles), 2 * np.pi / len(angles))
    densities = np.asarray(densities, dtype=float)
    teacher, teacher_signs = _teacher_points(np.zeros((0, 3)) if teacher is None else teacher)
    closed = np.append(angles, angles[0] + 2 * np.pi)
    count = len(times)
    fig = plt.figure(figsize=(3.2 * count, 6.4), constrained_layout=True)
    grid = fig.add_gridspec(2, count, height_ratios=[1.25, 1])
    reach = 0.2 + max(2.0, float(np.max(np.abs(teacher), initial=0.0)))
    scale = None
    if particles is not None:
        farthest = max(float(np.max(np.abs(np.asarray(theta)[:, -1]) * np.linalg.norm(np.asarray(theta)[:, :-1],
                                                                                       axis=1))) for theta in particles)
        scale = 2.0 / max(farthest, 1e-300)
    top = max(float(np.max(densities)), 1e-300)  # one radial scale for every time
    for k, t in enumerate(times):
        ax = fig.add_subplot(grid[0, k])
        ax.plot(np.cos(closed), np.sin(closed), color="0.75", lw=0.8)
        for species, color, name in ((0, PLUS, "ν+"), (1, MINUS, "ν−")):
            radius = 1 + np.append(densities[k, species], densities[k, species, 0]) / top
            mass = float(weights @ densities[k, species])
            ax.plot(radius * np.cos(closed), radius * np.sin(closed), color=color, lw=1.2,
                    label=f"{name}, mass {mass:.3g}")
        for point, sign in zip(teacher, teacher_signs):
            ax.plot([0, point[0]], [0, point[1]], "k--", lw=0.7)
            ax.plot(*point, "*", ms=11, color=PLUS if sign > 0 else MINUS, markeredgecolor="k")
        if particles is not None:
            theta = np.asarray(particles[k], dtype=float)
            shown = scale * np.abs(theta[:, -1:]) * theta[:, :-1]
            positive = theta[:, -1] > 0
            ax.plot(*shown[positive].T, ".", ms=3, color=PLUS, alpha=0.7)
            ax.plot(*shown[~positive].T, ".", ms=3, color=MINUS, alpha=0.7)
        ax.set(xlim=(-reach, reach), ylim=(-reach, reach), aspect="equal", title=f"t = {t:g}")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax = fig.add_subplot(grid[1, :])
    shades = np.linspace(0.35, 1.0, count)
    for k, t in enumerate(times):
        ax.plot(angles, densities[k, 0], color=PLUS, alpha=shades[k], lw=1, label=f"ν+, t = {t:g}")
        ax.plot(angles, -densities[k, 1], color=MINUS, alpha=shades[k], lw=1)
    for angle in np.mod(np.arctan2(teacher[:, 1], teacher[:, 0]), 2 * np.pi):
        ax.axvline(angle, color="k", ls="--", lw=0.7)
    ax.set(xlabel="angle φ of s = (cos φ, sin φ)", ylabel="ν+ (up), −ν− (down), per radian",
           xlim=(0, 2 * np.pi))
    ax.legend(fontsize=7, ncol=min(count, 4))
    fig.suptitle((title or "ν± on the circle, teacher (stars)")
                 + (f"; particles: {scale:.3g} × |b|·a (dots)" if particles is not None else ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def excess_against_m(path, ms, gd, random_features, pde=None, title=None):
    """The relative excess energy at convergence against m: gradient descent on m neurons
    and convex minimization on m random features (means over seeds, each seed a dot), and
    the PDE's final value as a line.

    Parameters
    ----------
    path : path-like
    ms : sequence of int
    gd, random_features : dict m → list of excess values (one per seed)
    pde : float, optional
    title : str, optional
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8), constrained_layout=True)
    floor = np.finfo(float).tiny
    for values, label, color in ((gd, "gradient descent (non-convex)", "tab:green"),
                                 (random_features, "random features (convex)", "tab:purple")):
        ax.loglog(ms, [max(np.mean(values[m]), floor) for m in ms], "o-", color=color, label=label)
        for m in ms:
            ax.loglog([m] * len(values[m]), np.maximum(values[m], floor), ".", color=color, alpha=0.5)
    if pde is not None:
        ax.axhline(pde, color="k", ls=":", label="PDE (m = ∞) at its horizon")
    ax.axhline(1e-3, color="0.6", lw=0.8, ls="--", label="1e-3")
    ax.set(xlabel="neurons m", ylabel="(F − F*)/(F(ν0) − F*) at convergence", title=title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def sphere_density(path, points, triangles, rho, teacher=None, particles=None, title=None):
    """ν+ − ν− on a sphere mesh in a 3D view, with the teacher's directions as stars and the
    particles' directions a/|a| as dots coloured by the sign of b, their areas growing with
    |a||b| (3 + 60 |a||b|/max, in points²; drawn over the stars).

    Parameters
    ----------
    path : path-like
    points : array (n, 3)
        The vertices (on the unit sphere).
    triangles : array (c, 3)
        The surface triangles.
    rho : array (2, n)
        ν+ and ν− at the vertices.
    teacher : array (m0, 4), optional
        Rows (a, b) with a ∈ S².
    particles : array (m, 4), optional
        Neurons (a, b).
    title : str, optional
    """
    plt = _pyplot()
    from matplotlib import cm, colors

    from .fem import plot_surface

    points, rho = np.asarray(points, dtype=float), np.asarray(rho, dtype=float)
    signed = rho[0] - rho[1]
    top = max(float(np.max(np.abs(signed))), 1e-300)
    norm = colors.TwoSlopeNorm(vmin=-top, vcenter=0.0, vmax=top)
    fig = plt.figure(figsize=(9, 4.4), constrained_layout=True)
    for k, (elevation, azimuth) in enumerate(((25, 45), (-25, 225))):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d", computed_zorder=False)
        e, a = np.radians(elevation), np.radians(azimuth)
        viewer = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])  # markers on this side only
        plot_surface(ax, points, np.asarray(triangles), signed, cmap="coolwarm", norm=norm, linewidth=0, zorder=1)
        if teacher is not None:
            teacher = np.asarray(teacher, dtype=float)
            for neuron, b in zip(teacher[:, :-1], teacher[:, -1]):
                s = 1.08 * neuron / np.linalg.norm(neuron)
                if s @ viewer > 0:
                    ax.scatter(*s, marker="*", s=120, color=PLUS if b > 0 else MINUS, edgecolor="k",
                               depthshade=False, zorder=3)
        if particles is not None:
            particles = np.asarray(particles, dtype=float)
            norms = np.linalg.norm(particles[:, :-1], axis=1, keepdims=True)
            s = 1.04 * particles[:, :-1] / norms
            mass = norms[:, 0] * np.abs(particles[:, -1])  # |a||b|: the atom's share of ν±, up to the weight
            area = 3 + 60 * mass / max(float(mass.max()), 1e-300)
            front, positive = s @ viewer > 0, particles[:, -1] > 0
            for keep, color in ((front & positive, PLUS), (front & ~positive, MINUS)):
                ax.scatter(*s[keep].T, s=area[keep], color=color, edgecolor="k", linewidth=0.3, depthshade=False,
                           zorder=4)
        ax.view_init(elev=elevation, azim=azimuth)
        ax.set_axis_off()
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap="coolwarm"), ax=fig.axes, shrink=0.6, label="ν+ − ν−")
    fig.suptitle(title or "ν± on the sphere (two views), teacher directions as stars")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def torus_density(path, bounds, times, densities, spikes=None, title=None, atoms=None):
    """The densities ν± on the torus T^d (d = 1 or 2, the sparse deconvolution presets) at
    ``times``, with the spikes marked and, on the last time's panel, particles' atoms.

    On T¹ one panel: ν+(z) up and −ν−(z) down at every time (darker is later), each spike z_j
    a dashed line and a star at height (m_j/max|m|) times the largest density shown (its sign
    is the colour). On T², one panel per time: the image of ν+ − ν− (red positive, blue
    negative, one colour scale for every time) with the spikes as stars.

    Parameters
    ----------
    path : path-like
    bounds : array (d, 2)
        The torus [lo, hi]^d (the grid's bounds).
    times : array (T,)
    densities : array (T, 2, *cells)
        ν+ and ν− per unit volume at the cells (equal cells covering the torus).
    spikes : array (J, d + 1), optional
        Rows (z_j, m_j): the positions and signed masses of the spikes.
    title : str, optional
    atoms : dict, optional
        Label → :class:`~solver.energies.deconvolution.TorusMeasure` (positions, masses, signs)
        at the last time: on T¹ markers at height ±mass, on T² markers of area ∝ mass.
    """
    plt = _pyplot()
    atoms = atoms or {}
    markers = dict(zip(atoms, "xo+^"))
    bounds, densities = np.asarray(bounds, dtype=float), np.asarray(densities, dtype=float)
    spikes = np.zeros((0, len(bounds) + 1)) if spikes is None else np.asarray(spikes, dtype=float)
    colors = np.where(spikes[:, -1] > 0, PLUS, MINUS)
    if len(bounds) == 1:
        (lo, hi), = bounds
        z = lo + (np.arange(densities.shape[-1]) + 0.5) * (hi - lo) / densities.shape[-1]
        fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
        shades = np.linspace(0.35, 1.0, len(times))
        for k, t in enumerate(times):
            ax.plot(z, densities[k, 0], color=PLUS, alpha=shades[k], lw=1, label=f"ν+, t = {t:g}")
            ax.plot(z, -densities[k, 1], color=MINUS, alpha=shades[k], lw=1)
        top = max(float(np.max(np.abs(densities))), 1e-300)
        heights = top * spikes[:, -1] / max(float(np.max(np.abs(spikes[:, -1]), initial=0.0)), 1e-300)
        for (position, height, color) in zip(spikes[:, 0], heights, colors):
            ax.axvline(position, color="k", ls="--", lw=0.7)
            ax.plot(position, height, "*", ms=11, color=color, markeredgecolor="k")
        for label, measure in atoms.items():
            ax.plot(measure.positions[:, 0], measure.signs * measure.masses, markers[label], color="k", ms=5,
                    label=f"{label} (mass, t = {times[-1]:g})")
        ax.set(xlabel="z", ylabel="ν+ (up), −ν− (down), per unit length", xlim=(lo, hi))
        ax.legend(fontsize=7, ncol=min(len(times), 4))
    else:
        signed = densities[:, 0] - densities[:, 1]
        top = max(float(np.max(np.abs(signed))), 1e-300)
        fig, axes = plt.subplots(1, len(times), figsize=(3.6 * len(times), 3.4), constrained_layout=True,
                                 squeeze=False)
        for ax, k in zip(axes[0], range(len(times))):
            image = ax.imshow(signed[k].T, origin="lower", extent=bounds.ravel(), cmap="coolwarm", vmin=-top,
                              vmax=top)
            ax.scatter(spikes[:, 0], spikes[:, 1], marker="*", s=140, c=colors, edgecolor="k")
            ax.set(xlabel="z₁", ylabel="z₂", aspect="equal", title=f"t = {times[k]:g}")
        for label, measure in atoms.items():
            heavy = measure.masses > 1e-3 * max(float(np.max(measure.masses, initial=0.0)), 1e-300)
            axes[0, -1].scatter(*measure.positions[heavy].T, s=60 * measure.masses[heavy], marker=markers[label],
                                c=np.where(measure.signs[heavy] > 0, "k", "0.4"), label=label)
        if atoms:
            axes[0, -1].legend(fontsize=7, loc="lower left")
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="ν+ − ν−")
    fig.suptitle(title or f"ν± on the torus T^{len(bounds)}, spikes (stars)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def input_plane_predictors(path, X, y, predictors, titles, extent, unit_circle=False):
    """Classifiers in the input plane side by side, as in seed 001: the sign of h (blue +,
    red −), its zero level set (black), the training points coloured by their label.

    Parameters
    ----------
    path : path-like
    X : array (n, 2)
        Training inputs.
    y : array (n,)
        Their labels ±1.
    predictors : sequence of callables
        h(x) for inputs x (N, 2), one panel each (called on 64 blocks of the 281² pixels, so
        a predictor with many directions does not build one huge feature matrix).
    titles : sequence of str
    extent : float
        The panels show [−extent, extent]².
    unit_circle : bool
        Draw the unit circle (the inputs of the case without a bias).
    """
    plt = _pyplot()
    u = np.linspace(-extent, extent, 281)
    U, V = np.meshgrid(u, u)
    plane = np.stack([U.ravel(), V.ravel()], axis=1)
    fig, axes = plt.subplots(1, len(predictors), figsize=(4.2 * len(predictors), 4.2), squeeze=False)
    for ax, predictor, title in zip(axes[0], predictors, titles):
        h = np.concatenate([predictor(rows) for rows in np.array_split(plane, 64)]).reshape(U.shape)
        ax.contourf(U, V, np.sign(h), levels=[-1.5, 0, 1.5], colors=["#f4b6b6", "#b6c8f4"])
        ax.contour(U, V, h, levels=[0.0], colors="k", linewidths=1.2)
        ax.scatter(*X[y > 0].T, c="tab:blue", edgecolors="k", s=30, label="y = +1")
        ax.scatter(*X[y < 0].T, c="tab:red", edgecolors="k", s=30, label="y = −1")
        if unit_circle:
            ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, ls=":", color="gray"))
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def margin_curves(path, times, curves):
    """Normalized margins, each over its max-margin reference, against log t (``curves``:
    label → values at ``times``); the lines 1 and 0.9 marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        ax.semilogx(times, values, marker="o", ms=3, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.9, color="k", lw=0.8, ls=":")
    ax.set_ylim(0, 1.1)
    ax.set(xlabel="t", ylabel="normalized margin / its max-margin reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def margins_against_m(path, ms, runs, pde=None, title=None):
    """The seed's "margin vs m" panel: the final normalized margin γ/γ*₁ of gradient descent
    per seed (dots) and their mean (line) against m, with the PDE's (dashed) and γ*₁ (1).

    Parameters
    ----------
    path : path-like
    ms : sequence of int
    runs : array (len(ms), seeds)
        γ/γ*₁ of each run.
    pde : float, optional
    title : str, optional
    """
    plt = _pyplot()
    runs = np.asarray(runs, dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for m, values in zip(ms, runs):
        ax.semilogx(np.full(len(values), m), values, "o", color="tab:gray", ms=4, alpha=0.7)
    ax.semilogx(ms, runs.mean(axis=1), "o-", color="tab:blue", label="gradient descent (mean over seeds)")
    if pde is not None:
        ax.axhline(pde, color="tab:red", ls="--", label="PDE")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(xlabel="neurons m", ylabel="γ / γ*1 at the end", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
