"""Ledger arithmetic on hand-computed cases, order statistics against brute force, prices and errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttclab.errors import ConfigError, DataError
from ttclab.ledger.costs import (
    SUMMARY_COLUMNS,
    CostSpec,
    build_ledger,
    context_sum,
    decode_flops,
    expected_max,
    expected_min,
    ledger_table,
    order_stat_weights,
    prefill_flops,
    summarize,
    unit_column,
)
from ttclab.ledger.models import load_architectures
from ttclab.ledger.prices import load_prices


def spec(toy_files, **kw) -> CostSpec:
    models, prices = toy_files
    return CostSpec(architectures=str(models), prices=str(prices), **kw)


# ---------------------------------------------------------------- tokens


def test_tokens_are_samples_used_times_mean(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10, 10], [5, 5, 5]], [[10, 20, 30], [1, 2, 3]])
    led = build_ledger(arrays, result_factory(2, [1, 2, 3]), spec(toy_files))
    np.testing.assert_allclose(led.costs["prompt_tokens"], [[10, 20, 30], [5, 10, 15]])
    np.testing.assert_allclose(led.costs["completion_tokens"], [[20, 40, 60], [2, 4, 6]])
    np.testing.assert_allclose(led.costs["rm_tokens"], 0)
    np.testing.assert_allclose(led.cost("tokens"), [[30, 60, 90], [7, 14, 21]])
    row = summarize([led])
    np.testing.assert_allclose(row["prompt_tokens"], [7.5, 15, 22.5])
    np.testing.assert_allclose(row["completion_tokens"], [11, 22, 33])


def test_adaptive_samples_used_scales_tokens(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10]], [[10, 30]])
    led = build_ledger(arrays, result_factory(1, [2], samples_used=np.array([[1.5]])), spec(toy_files))
    assert led.costs["completion_tokens"][0, 0] == pytest.approx(1.5 * 20)
    assert led.costs["prompt_tokens"][0, 0] == pytest.approx(15)


def test_reward_model_scores_full_sequences(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10, 10], [5, 5, 5]], [[10, 20, 30], [1, 2, 3]])
    res = result_factory(2, [1, 2], strategy="best_of_n", uses_reward_model=True)
    led = build_ledger(arrays, res, spec(toy_files, rm_model="toy-rm"))
    np.testing.assert_allclose(led.costs["rm_tokens"], [[30, 60], [7, 14]])
    rm = load_architectures(toy_files[0]).get("toy-rm")
    # RM FLOPs: prefill of each full sequence on the RM, k x mean over the samples
    per_sample = prefill_flops(rm, np.array([[20, 30, 40], [6, 7, 8]]))
    np.testing.assert_allclose(led.costs["rm_flops"], per_sample.mean(axis=1)[:, None] * [1, 2])
    np.testing.assert_allclose(led.costs["flops"], led.costs["flops_prefill"] + led.costs["flops_decode"] + led.costs["rm_flops"])


# ---------------------------------------------------------------- FLOPs


def test_flops_hand_computed(toy_files):
    toy = load_architectures(toy_files[0]).get("toy")
    # p=3, d=2: prefill 2*1000*3 + 4*d_attn(4)*layers(2)*(1+2+3) = 6000 + 192
    assert prefill_flops(toy, 3) == pytest.approx(6192)
    # decode: 2*1000*2 + 16*2*(4+5) = 4000 + 288
    assert decode_flops(toy, 3, 2) == pytest.approx(4288)
    # whole sequence equals 2 N S + 2 L d_attn S (S+1)
    assert prefill_flops(toy, 3) + decode_flops(toy, 3, 2) == pytest.approx(2 * 1000 * 5 + 2 * 2 * 4 * 5 * 6)


def test_flops_sliding_window(toy_files):
    local = load_architectures(toy_files[0]).get("toy-local")
    # global layer attends 1+2+3=6, local layer (window 2) 1+2+2=5 -> 16*(6+5)
    assert prefill_flops(local, 3) == pytest.approx(6000 + 16 * 11)
    # decode t=4,5: global 9, local 2+2=4
    assert decode_flops(local, 3, 2) == pytest.approx(4000 + 16 * 13)
    np.testing.assert_allclose(context_sum(np.array([1, 2, 5]), 2), [1, 3, 9])


def test_flops_in_ledger(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[3, 3]], [[2, 4]])
    led = build_ledger(arrays, result_factory(1, [1, 2]), spec(toy_files))
    toy = load_architectures(toy_files[0]).get("toy")
    per_sample = prefill_flops(toy, 3) + decode_flops(toy, np.array([3, 3]), np.array([2, 4]))
    np.testing.assert_allclose(led.costs["flops"][0], per_sample.mean() * np.array([1, 2]))
    shared = build_ledger(arrays, result_factory(1, [1, 2]), spec(toy_files, share_prompt=True))
    # one prefill for both samples instead of two
    assert led.costs["flops"][0, 1] - shared.costs["flops"][0, 1] == pytest.approx(prefill_flops(toy, 3))


def test_untied_embedding_is_not_a_matmul(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("models:\n  u: {n_params: 1000, n_layers: 1, hidden_size: 10, n_heads: 1, n_kv_heads: 1, head_dim: 10, "
                    "context: 8, vocab_size: 30, tie_embeddings: false}\n")
    assert load_architectures(path).get("u").matmul_params == 1000 - 300


# ---------------------------------------------------------------- memory


def test_memory_hand_computed(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[3]], [[2]])
    led = build_ledger(arrays, result_factory(1, [1]), spec(toy_files))
    # weights 1000*2 B; KV 2*1 kv head*2 dim*2 B = 8 B per token and layer, 16 B per token
    prefill = 2000 + 16 * 3
    kv_reads = 8 * 2 * (4 + 5)
    kv_writes = 16 * 2
    weight_reads = 2000 * 2
    assert led.costs["memory_bytes"][0, 0] == pytest.approx(prefill + kv_reads + kv_writes + weight_reads)


def test_memory_batch_reads_weights_once_per_step(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[3, 3]], [[2, 4]])
    res = result_factory(1, [2])
    batched = build_ledger(arrays, res, spec(toy_files))
    serial = build_ledger(arrays, res, spec(toy_files, batch_parallel=False))
    # batched: 2000 B x max(2, 4) decode steps; one by one: 2000 B x (2 + 4)
    assert serial.costs["memory_bytes"][0, 0] - batched.costs["memory_bytes"][0, 0] == pytest.approx(2000 * 6 - 2000 * 4)
    fp8 = build_ledger(arrays, res, spec(toy_files, bytes_per_param=1, bytes_per_kv=1))
    assert fp8.costs["memory_bytes"][0, 0] == pytest.approx(batched.costs["memory_bytes"][0, 0] / 2)


# ---------------------------------------------------------------- order statistics, latency


def brute_expected(values, k, fn=max):
    subsets = list(itertools.combinations(values, k))
    return sum(fn(s) for s in subsets) / len(subsets)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=7), st.data())
def test_expected_max_matches_enumeration(values, data):
    n = len(values)
    k = data.draw(st.integers(1, n))
    pad = data.draw(st.integers(0, 2))
    vals = np.array([values + [0.0] * pad])
    present = np.array([[True] * n + [False] * pad])
    got = expected_max(vals, present, np.array([[float(k)]]))[0, 0]
    assert got == pytest.approx(brute_expected(values, k), rel=1e-9, abs=1e-9)
    got_min = expected_min(vals, present, np.array([[float(k)]]))[0, 0]
    assert got_min == pytest.approx(brute_expected(values, k, min), rel=1e-9, abs=1e-9)


def test_order_stat_weights_are_a_distribution():
    w = order_stat_weights(1024, [1, 2, 64, 1024])
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-9)
    assert w[0, -1] == pytest.approx(1.0)  # k = n: always the largest
    assert np.isnan(order_stat_weights(3, [4])).all()


def test_expected_max_interpolates_and_rejects_k_above_n():
    vals = np.array([[1.0, 2.0, 4.0]])
    present = np.ones((1, 3), bool)
    e1, e2 = brute_expected([1, 2, 4], 1), brute_expected([1, 2, 4], 2)
    got = expected_max(vals, present, np.array([[1.0, 1.25, 2.0, 4.0, np.nan]]))[0]
    np.testing.assert_allclose(got[:3], [e1, 0.75 * e1 + 0.25 * e2, e2])
    assert np.isnan(got[3]) and np.isnan(got[4])


def test_latency_parallel_and_sequential(toy_files, arrays_factory, result_factory):
    lat = [[1.0, 2.0, 6.0]]
    arrays = arrays_factory([[1, 1, 1]], [[1, 1, 1]], latency=lat)
    led = build_ledger(arrays, result_factory(1, [1, 2, 3]), spec(toy_files))
    np.testing.assert_allclose(led.costs["latency_parallel_s"][0], [3.0, (2 + 6 + 6) / 3, 6.0])
    np.testing.assert_allclose(led.costs["latency_sequential_s"][0], [3.0, 6.0, 9.0])
    np.testing.assert_allclose(led.cost("latency"), led.costs["latency_parallel_s"])


def test_latency_estimated_from_speed_or_nan_with_reason(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[100, 100]], [[10, 30]], latency=[[np.nan, 2.0]])
    res = result_factory(1, [1, 2])
    led = build_ledger(arrays, res, spec(toy_files, decode_tokens_per_s=10, prefill_tokens_per_s=1000))
    # sample 0 estimated as 100/1000 + 10/10 = 1.1 s, sample 1 measured 2.0 s
    np.testing.assert_allclose(led.costs["latency_sequential_s"][0], [1.55, 3.1])
    np.testing.assert_allclose(led.costs["latency_parallel_s"][0], [1.55, 2.0])
    assert any("estimated" in n for n in led.notes)
    unknown = build_ledger(arrays, res, spec(toy_files))
    assert np.isnan(unknown.costs["latency_parallel_s"]).all()
    assert any("decode_tokens_per_s" in n for n in unknown.notes)


def test_first_finish_cancels_the_rest(toy_files, arrays_factory, result_factory):
    comp = [4.0, 8.0, 10.0, 20.0]
    arrays = arrays_factory([[5] * 4], [comp], latency=[[0.4, 0.8, 1.0, 2.0]])
    led = build_ledger(arrays, result_factory(1, [1, 2, 3], strategy="first-finish"), spec(toy_files))
    for i, k in enumerate([1, 2, 3]):
        assert led.costs["completion_tokens"][0, i] == pytest.approx(k * brute_expected(comp, k, min))
        assert led.costs["latency_parallel_s"][0, i] == pytest.approx(brute_expected([0.4, 0.8, 1.0, 2.0], k, min))
    toy = load_architectures(toy_files[0]).get("toy")
    want = 2 * (prefill_flops(toy, 5) + sum(decode_flops(toy, 5, min(s)) for s in itertools.combinations(comp, 2)) / 6)
    assert led.costs["flops"][0, 1] == pytest.approx(want)


# ---------------------------------------------------------------- dollars


def test_usd_from_price_file(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10]], [[20, 20]])
    led = build_ledger(arrays, result_factory(1, [2]), spec(toy_files))
    assert led.cost("usd")[0, 0] == pytest.approx((20 * 1.0 + 40 * 2.0) / 1e6)
    cached = build_ledger(arrays, result_factory(1, [2]), spec(toy_files, share_prompt=True))
    assert cached.cost("usd")[0, 0] == pytest.approx((10 * 1.0 + 40 * 2.0 + 10 * 0.1) / 1e6)
    rm = build_ledger(arrays, result_factory(1, [2], uses_reward_model=True), spec(toy_files, rm_model="toy-rm"))
    assert rm.cost("usd")[0, 0] == pytest.approx((20 * 1.0 + 40 * 2.0 + 60 * 3.0) / 1e6)


def test_price_overrides(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10]], [[20, 20]])
    led = build_ledger(arrays, result_factory(1, [2]), spec(toy_files, price_overrides={"toy": {"output": 4.0}}))
    assert led.cost("usd")[0, 0] == pytest.approx((20 * 1.0 + 40 * 4.0) / 1e6)
    # a model missing from the file can be priced by an override alone
    other = arrays_factory([[10]], [[20]], model="new-model")
    led2 = build_ledger(other, result_factory(1, [1]), spec(toy_files, units=("tokens", "usd"),
                                                            price_overrides={"new-model": {"input": 1, "output": 1}}))
    assert led2.cost("usd")[0, 0] == pytest.approx(30 / 1e6)


def test_reward_model_without_rm_model_is_nan_with_reason(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10]], [[20, 20]])
    led = build_ledger(arrays, result_factory(1, [2], uses_reward_model=True), spec(toy_files))
    assert np.isnan(led.cost("usd")).all() and np.isnan(led.cost("flops")).all()
    assert led.cost("tokens")[0, 0] == pytest.approx(60 + 60)
    assert any("rm_model" in n for n in led.notes)


# ---------------------------------------------------------------- errors and degenerate input


@pytest.mark.parametrize("units", [("flops",), ("memory",), ("usd",)])
def test_missing_model_is_a_one_line_data_error(toy_files, arrays_factory, result_factory, units):
    arrays = arrays_factory([[10]], [[20]], model="mystery-9b")
    with pytest.raises(DataError) as err:
        build_ledger(arrays, result_factory(1, [1]), spec(toy_files, units=units))
    assert "mystery-9b" in str(err.value) and "\n" not in str(err.value)


def test_tokens_need_no_model_data(arrays_factory, result_factory):
    arrays = arrays_factory([[10]], [[20]], model="mystery-9b")
    led = build_ledger(arrays, result_factory(1, [1]), CostSpec(units=("tokens", "latency")))
    assert led.cost("tokens")[0, 0] == 30
    assert np.isnan(led.cost("flops")).all() and any("flops: not requested" in n for n in led.notes)


def test_default_units_are_those_with_data(toy_files, arrays_factory, result_factory):
    known = build_ledger(arrays_factory([[10]], [[20]], latency=[[1.0]]), result_factory(1, [1]), spec(toy_files))
    assert np.isfinite(known.cost("flops")).all() and np.isfinite(known.cost("usd")).all() and known.notes == ()
    arrays = arrays_factory([[10]], [[20]], model="mystery-9b")
    led = build_ledger(arrays, result_factory(1, [1]), CostSpec(architectures=str(toy_files[0])))
    assert led.cost("tokens")[0, 0] == 30
    assert np.isnan(led.cost("flops")).all() and np.isnan(led.cost("usd")).all()
    assert any(n.startswith("flops, memory: no architecture for model 'mystery-9b'") for n in led.notes)
    assert "usd: no price file given" in led.notes


def test_config_errors(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10]], [[20]])
    with pytest.raises(ConfigError):
        build_ledger(arrays, result_factory(1, [1]), CostSpec(architectures=str(toy_files[0]), units=("usd",)))
    with pytest.raises(ConfigError):
        CostSpec(units=("joules",))
    with pytest.raises(ConfigError):
        unit_column("joules")
    with pytest.raises(DataError):
        build_ledger(arrays, result_factory(2, [1]), spec(toy_files))  # wrong number of questions


def test_nan_accuracy_propagates_with_reason(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10], [10, 10]], [[20, 20], [20, 20]], present=[[True, True], [True, False]])
    acc = np.array([[1.0, 0.5, np.nan], [0.0, np.nan, np.nan]])
    led = build_ledger(arrays, result_factory(2, [1, 2, 3], accuracy=acc), spec(toy_files))
    assert np.isnan(led.cost("usd")[1, 1]) and np.isfinite(led.cost("usd")[0, 1])
    table = summarize([led])
    np.testing.assert_array_equal(table["n_questions"], [2, 1, 0])
    np.testing.assert_allclose(table["accuracy"][:2], [0.5, 0.5])
    assert np.isnan(table["accuracy"][2]) and "no question" in table["notes"][2]
    # costs are averaged over the questions where the accuracy is defined
    assert table["completion_tokens"][1] == pytest.approx(40)


def test_summary_standard_error_and_ci(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[1]] * 4, [[1]] * 4)
    acc = np.array([[1.0], [0.0], [1.0], [1.0]])
    led = build_ledger(arrays, result_factory(4, [1], accuracy=acc), spec(toy_files))
    row = summarize([led])
    se = np.std(acc, ddof=1) / 2
    assert row["accuracy_se"][0] == pytest.approx(se)
    assert row["ci_low"][0] == pytest.approx(0.75 - 1.959964 * se, abs=1e-5)
    assert row["ci_high"][0] == 1.0  # clipped to [0, 1]
    a = summarize([led], n_bootstrap=500, rng=np.random.default_rng(1))
    b = summarize([led], n_bootstrap=500, rng=np.random.default_rng(1))
    assert a["ci_low"][0] == b["ci_low"][0] and 0.0 <= a["ci_low"][0] <= 0.75 <= a["ci_high"][0] <= 1.0
    with pytest.raises(ConfigError):
        summarize([led], n_bootstrap=10)


def test_unanimous_questions_get_a_wilson_interval_not_a_point(toy_files, arrays_factory, result_factory):
    from ttclab.strategies.bootstrap import wilson

    arrays = arrays_factory([[1, 1]] * 2, [[1, 1]] * 2)
    acc = np.array([[0.0, 1.0], [0.0, 1.0]])  # 2 questions: all wrong at k=1, all right at k=2
    led = build_ledger(arrays, result_factory(2, [1, 2], accuracy=acc), spec(toy_files))
    for opts in ({}, {"n_bootstrap": 200, "seed": 0}):
        row = summarize([led], **opts)
        assert row["ci_low"][0] == 0.0 and row["ci_high"][0] == pytest.approx(wilson(0, 2)[1])
        assert row["ci_high"][0] > 0.6 and row["ci_high"][1] == 1.0 and row["ci_low"][1] < 0.4  # 2 questions prove little
    for q in range(1, 300):  # the interval holds the unanimous accuracy exactly (plots draw error bars from it)
        assert wilson(0, q)[0] == 0.0 and wilson(q, q)[1] == 1.0
    mixed = build_ledger(arrays, result_factory(2, [1, 2], accuracy=np.array([[0.0, 1.0], [1.0, 1.0]])), spec(toy_files))
    row = summarize([mixed])
    se = np.std([0.0, 1.0], ddof=1) / np.sqrt(2)
    assert row["ci_low"][0] == pytest.approx(max(0.0, 0.5 - 1.959964 * se))  # not unanimous: the normal interval


def test_ledger_table_columns(toy_files, arrays_factory, result_factory):
    arrays = arrays_factory([[10, 10]], [[20, 20]], latency=[[1.0, 2.0]])
    table = ledger_table(arrays, [result_factory(1, [1, 2]), result_factory(1, [1, 2], strategy="pass@k")], spec(toy_files))
    assert table.num_rows == 4 and list(table.column_names) == list(SUMMARY_COLUMNS)
    for col in ("accuracy", "accuracy_se", "ci_low", "ci_high", "prompt_tokens", "completion_tokens", "rm_tokens",
                "flops", "memory_bytes", "latency_parallel_s", "latency_sequential_s", "usd"):
        assert col in table.column_names
    assert table.column("strategy").to_pylist() == ["majority", "majority", "pass@k", "pass@k"]
    assert not math.isnan(table.column("usd").to_pylist()[0])


def test_builtin_local_prices_cover_embedded_models(arrays_factory, result_factory):
    table = load_prices("local")
    for model in ("smollm2-135m", "gemma3-270m"):
        price = table.get(model)
        assert 0 < price.input < price.output
    arrays = arrays_factory([[100]], [[1000]], model="smollm2-135m")
    led = build_ledger(arrays, result_factory(1, [1]), CostSpec(prices="local"))
    assert led.cost("usd")[0, 0] == pytest.approx((100 * 0.0139 + 1000 * 0.111) / 1e6)
    assert led.cost("flops")[0, 0] > 2 * 134.5e6 * 1100  # at least the matmul term
