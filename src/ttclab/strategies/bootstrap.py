"""The one bootstrap: confidence intervals over questions, shared by every strategy and budget.

Questions are the resampling unit (the per-question accuracies are exact expectations, or resampled
ones with a small Monte-Carlo error). :class:`QuestionBootstrap` draws the resamples once from a seed
and the number of questions, and applies the same resamples to every (strategy, k) on those
questions. So

* a strategy's interval does not depend on which other strategies were asked for (or their order);
* the difference of two strategies on the same questions is bootstrapped *paired*: each resample
  takes both on the same questions, and :meth:`QuestionBootstrap.paired` gives its interval.

A resampled estimator's Monte-Carlo error is added in quadrature to each side of the percentile
interval (``half' = sqrt(half^2 + (z se_mc)^2)``), so its interval covers both sources of error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtri

from ttclab.errors import ConfigError, DataError
from ttclab.strategies.base import StrategyResult


@dataclass(frozen=True)
class Interval:
    """A mean with its standard error and percentile interval, per budget (arrays of shape (K,))."""

    mean: np.ndarray
    se: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True, eq=False)
class QuestionBootstrap:
    """``weights[b, q]``: how often question q appears in resample b (multinomial counts, B x Q)."""

    weights: np.ndarray
    level: float = 0.95

    @classmethod
    def draw(cls, n_questions: int, n_boot: int, seed: int, level: float = 0.95) -> QuestionBootstrap:
        """The resamples for ``n_questions`` questions; the same (seed, Q, B) always give the same ones."""
        if not 0.0 < level < 1.0:
            raise ConfigError(f"confidence level must be in (0, 1), got {level}")
        if n_questions <= 0:
            raise DataError("cannot bootstrap over zero questions")
        if n_boot < 1:
            raise ConfigError(f"the bootstrap needs at least 1 resample, got {n_boot}")
        return cls(_weights(int(n_questions), int(n_boot), int(seed) % (2**63)), level)

    @classmethod
    def from_rng(cls, n_questions: int, n_boot: int, rng: np.random.Generator,
                 level: float = 0.95) -> QuestionBootstrap:
        """Resamples from an injected generator (one draw of it fixes the seed)."""
        return cls.draw(n_questions, n_boot, int(rng.integers(2**63)), level)

    @property
    def n_questions(self) -> int:
        return int(self.weights.shape[1])

    @property
    def z(self) -> float:
        return float(ndtri(0.5 + self.level / 2))

    def _check(self, q: int) -> None:
        if q != self.n_questions:
            raise DataError(f"bootstrap drawn for {self.n_questions} questions, given {q}")

    def means(self, values: np.ndarray) -> np.ndarray:
        """(B, K) mean over each resample's questions of ``values`` (Q, K); NaN entries are skipped."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        self._check(values.shape[0])
        defined = np.isfinite(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray((self.weights @ np.where(defined, values, 0.0)) / (self.weights @ defined.astype(np.float64)))

    def interval(self, values: np.ndarray, mc_se: np.ndarray | None = None) -> Interval:
        """Mean over questions of ``values`` (Q, K) with its bootstrap SE and percentile interval.

        ``mc_se`` (K,) is the Monte-Carlo standard error of the mean itself (resampled estimators),
        added in quadrature to the SE and to each half of the interval.
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        stats = self.means(values)
        defined = np.isfinite(values)
        n = defined.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # budgets without a defined question: NaN
            mean = np.where(defined, values, 0.0).sum(axis=0) / np.where(n > 0, n, np.nan)
            alpha = (1.0 - self.level) / 2.0
            lo = np.nanquantile(stats, alpha, axis=0)
            hi = np.nanquantile(stats, 1.0 - alpha, axis=0)
            se = np.nanstd(stats, axis=0, ddof=1) if stats.shape[0] > 1 else np.zeros_like(mean)
        mc = np.zeros_like(mean) if mc_se is None else np.nan_to_num(np.asarray(mc_se, dtype=np.float64))
        zmc = self.z * mc
        low = mean - np.sqrt((mean - lo) ** 2 + zmc**2)
        high = mean + np.sqrt((hi - mean) ** 2 + zmc**2)
        return Interval(mean, np.sqrt(se**2 + mc**2), low, high)

    def paired(self, a: np.ndarray, b: np.ndarray, mc_se: float | np.ndarray = 0.0) -> Interval:
        """``a - b`` on the same questions (each (Q,) or (Q, K)), over the questions where both are
        defined, with a paired bootstrap interval; ``mc_se`` is the difference's Monte-Carlo SE."""
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise DataError(f"paired difference: shapes {a.shape} and {b.shape} differ (not the same questions?)")
        diff = np.where(np.isfinite(a) & np.isfinite(b), a - b, np.nan)
        k = 1 if diff.ndim == 1 else diff.shape[1]
        return self.interval(diff, np.broadcast_to(np.asarray(mc_se, dtype=np.float64), (k,)))


@lru_cache(maxsize=4)
def _weights(q: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, q])
    w = rng.multinomial(q, np.full(q, 1.0 / q), size=n_boot).astype(np.float64)
    w.setflags(write=False)
    return w


def mc_standard_error(accuracy_se: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """(K,) Monte-Carlo SE of the mean over questions from per-question SEs: sqrt(sum se_q^2) / n."""
    se = np.asarray(accuracy_se, dtype=np.float64)
    defined = np.isfinite(np.asarray(accuracy, dtype=np.float64))
    n = defined.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(np.where(defined, np.nan_to_num(se) ** 2, 0.0).sum(axis=0)) / np.where(n > 0, n, np.nan))


def bootstrap_means(accuracy: np.ndarray, rng: np.random.Generator, n_boot: int = 2000) -> np.ndarray:
    """(n_boot, K) mean accuracy over questions resampled with replacement (NaN entries skipped)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    return QuestionBootstrap.from_rng(acc.shape[0], n_boot, rng).means(acc)


def bootstrap_ci(
    result: StrategyResult | np.ndarray,
    rng: np.random.Generator,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (K,): percentile bootstrap CI of the mean accuracy over questions.

    A :class:`StrategyResult` contributes its Monte-Carlo error too. Budgets where no question is
    defined give NaN.
    """
    if not 0.0 < level < 1.0:
        raise DataError(f"confidence level must be in (0, 1), got {level}")
    acc = result.accuracy if isinstance(result, StrategyResult) else np.asarray(result)
    mc = mc_standard_error(result.accuracy_se, acc) if isinstance(result, StrategyResult) else None
    ci = QuestionBootstrap.from_rng(np.asarray(acc).shape[0], n_boot, rng, level).interval(acc, mc)
    return ci.low, ci.high


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (NaN, NaN when ``n == 0``): unlike the
    normal interval it does not shrink to a point when every question is right (or wrong)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends: rounding must not exclude p
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


__all__ = ["Interval", "QuestionBootstrap", "bootstrap_ci", "bootstrap_means", "mc_standard_error", "wilson"]
