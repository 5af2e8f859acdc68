#!/usr/bin/python3
"""Fits the polynomials src/vecmath.h uses for the standard normal CDF (through erf/erfc).

Run with Debian's interpreter (numpy, scipy):  /usr/bin/python3 scripts/fit-normal-cdf.py
Prints the coefficients (highest degree first, float32 with 9 significant digits) and the
relative error of the fitted polynomials (evaluated in double) on dense grids.

  near 0:   erf(z) = z P(z^2),                        0 <= z <= 0.5, P of degree 4
  the tail: erfc(z) = exp(-z^2) t G(s),  t = 1 / (1 + z/2),  s = (t - c) / r maps t to [-1, 1],
            0.5 <= z <= 10, G of degree 9
Weighted least squares on Chebyshev nodes minimises the relative error of each factor.
"""
import numpy as np
from scipy.special import erf, erfcx

SPLIT, ZMAX, DEG_A, DEG_B, NODES = 0.5, 10.0, 4, 9, 4000


def fit_relative(var, target, deg):
    V = np.vander(var, deg + 1)
    coef, *_ = np.linalg.lstsq(V / target[:, None], np.ones_like(target), rcond=None)
    return coef


cheb = np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)  # in (-1, 1)

z = SPLIT / 2 * (1 + cheb)
target = erf(z) / z
coef_a = fit_relative(z * z, target, DEG_A)

t_lo, t_hi = 1 / (1 + ZMAX / 2), 1 / (1 + SPLIT / 2)
c, r = (t_lo + t_hi) / 2, (t_hi - t_lo) / 2
t = c + r * cheb
zt = 2 * (1 / t - 1)
coef_b = fit_relative((t - c) / r, erfcx(zt) / t, DEG_B)

zz = np.linspace(1e-6, SPLIT, 200001)
err_a = np.abs(np.polyval(coef_a, zz * zz) / (erf(zz) / zz) - 1).max()
tt = np.linspace(t_lo, t_hi, 200001)
err_b = np.abs(np.polyval(coef_b, (tt - c) / r) / (erfcx(2 * (1 / tt - 1)) / tt) - 1).max()

print("P (erf near 0), max relative error %.2e:" % err_a)
print(", ".join("%.9ef" % np.float32(v) for v in coef_a))
print("G (erfc tail), t centre %.9g, half-width %.9g, max relative error %.2e:" % (c, r, err_b))
print(", ".join("%.9ef" % np.float32(v) for v in coef_b))
