"""Batched multi-sequence decoding with the real SmolLM2-135M model (backends/llama_batch.py).

The reference throughout is llama-cpp-python itself: ``Llama.create_chat_completion`` /
``create_completion`` one sample at a time with the sample's seed. The batched engine must give the
same tokens (see the module docstring of ``llama_batch`` for why that holds exactly).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import numpy as np
import pytest

from ttclab.backends import create_backend
from ttclab.backends.base import Request, SamplingParams
from ttclab.errors import ConfigError

llama_cpp = pytest.importorskip("llama_cpp")

MESSAGES = ({"role": "user", "content": "All cats are animals. Some animals are pets. Does it follow that some "
                                        "cats are pets? Answer yes or no, then explain."},)
SEED = 1234


@pytest.fixture(scope="module")
def smol():
    backend = create_backend("llamacpp", model="smollm2-135m", n_ctx=1024, n_threads=1)
    yield backend
    asyncio.run(backend.aclose())


@pytest.fixture(scope="module")
def direct():
    """llama-cpp-python's own high-level API on the same model: the reference."""
    from ttclab.backends.models import resolve_model_path

    llm = llama_cpp.Llama(str(resolve_model_path("smollm2-135m")), n_ctx=1024, n_threads=1, verbose=False,
                          logits_all=True)
    yield llm
    llm.close()


def gen(backend, prompt, seed=SEED, **params):
    return asyncio.run(backend.generate(Request(prompt, seed=seed), SamplingParams(**params)))


def reference(llm, prompt, seed, **p):
    """One sample from llama-cpp-python with ttclab's parameter mapping: (text, finish, tokens).

    ``reset()`` first: otherwise ``Llama`` reuses the KV cache of the previous prompt's common prefix
    and evaluates the prompt in two pieces, which rounds differently (its samples then depend on
    what it evaluated before; ttclab's engine always evaluates a prompt in one piece).
    """
    llm.reset()
    kw = dict(max_tokens=p["max_tokens"], temperature=p.get("temperature", 1.0), top_p=p.get("top_p", 1.0),
              top_k=p.get("top_k") or 0, min_p=p.get("min_p", 0.0), presence_penalty=p.get("presence_penalty", 0.0),
              frequency_penalty=p.get("frequency_penalty", 0.0), stop=list(p.get("stop", ())), seed=seed)
    kw.update(p.get("extra_body", {}))
    if isinstance(prompt, str):
        r = llm.create_completion(prompt=prompt, **kw)
        text = r["choices"][0]["text"]
    else:
        r = llm.create_chat_completion(messages=[dict(m) for m in prompt], **kw)
        text = r["choices"][0]["message"]["content"] or ""
    return text, r["choices"][0]["finish_reason"], r["usage"]["completion_tokens"], r["usage"]["prompt_tokens"]


@pytest.mark.parametrize("n", [1, 3, 8])
def test_n_samples_are_exactly_the_samples_create_chat_completion_gives(smol, direct, n):
    params = dict(max_tokens=40, temperature=0.8, n=n)
    out = gen(smol, MESSAGES, **params)
    assert len(out) == n
    for j, c in enumerate(out):
        text, finish, tokens, prompt_tokens = reference(direct, MESSAGES, SEED + j, **params)
        assert c.ok and c.text == text
        assert (c.finish_reason, c.completion_tokens, c.prompt_tokens) == (finish, tokens, prompt_tokens)
        assert c.latency_s > 0
    assert len({c.text for c in out}) == n  # different seeds, different samples


def test_every_sampling_knob_matches_llama_cpp_python(smol, direct):
    params = dict(max_tokens=32, temperature=1.1, top_p=0.9, top_k=50, min_p=0.02, presence_penalty=0.6,
                  frequency_penalty=0.4, n=3, extra_body={"repeat_penalty": 1.15, "typical_p": 0.95})
    out = gen(smol, MESSAGES, **params)
    for j, c in enumerate(out):
        text, finish, tokens, _ = reference(direct, MESSAGES, SEED + j, **params)
        assert (c.text, c.finish_reason, c.completion_tokens) == (text, finish, tokens)


def test_plain_completion_prompt_matches_create_completion(smol, direct):
    prompt = "Question: 1 + 1?\nAnswer: 2\nQuestion: 2 + 5?\nAnswer:"
    params = dict(max_tokens=24, temperature=1.0, n=4, stop=("\nQuestion",))
    out = gen(smol, prompt, **params)
    for j, c in enumerate(out):
        text, finish, tokens, prompt_tokens = reference(direct, prompt, SEED + j, **params)
        assert (c.text, c.finish_reason, c.completion_tokens, c.prompt_tokens) == (text, finish, tokens, prompt_tokens)


def test_prompt_tokens_are_the_ones_llama_cpp_python_evaluates(smol, direct):
    from ttclab.backends.llamacpp import render_prompt

    smol._load()
    for prompt in (MESSAGES, ({"role": "system", "content": "Be brief."}, *MESSAGES), "Once upon a time"):
        tokens, stops = render_prompt(smol._llama, Request(prompt), ("\n\n",))
        if isinstance(prompt, str):
            r = direct.create_completion(prompt=prompt, max_tokens=1, temperature=0.0)
        else:
            r = direct.create_chat_completion(messages=list(prompt), max_tokens=1, temperature=0.0)
        n = r["usage"]["prompt_tokens"]
        assert tokens == [int(t) for t in direct._input_ids[:n]]
        assert b"\n\n" in stops
    chat_tokens, chat_stops = render_prompt(smol._llama, Request(MESSAGES), ())
    assert b"<|im_end|>" in chat_stops  # the template's own stop string is kept, as create_chat_completion does
    assert smol._llama.detokenize(chat_tokens, special=True).decode().endswith("<|im_start|>assistant\n")


def test_a_stop_string_ends_one_sequence_early_while_the_others_go_on(smol):
    free = gen(smol, MESSAGES, max_tokens=40, temperature=0.9, n=4)
    # A stop string taken from the middle of sample 0 that the other samples never produce.
    words = free[0].text.split()
    stop = next(f" {w}" for w in words[3:] if len(w) > 3 and all(f" {w}" not in c.text for c in free[1:]))
    cut = gen(smol, MESSAGES, max_tokens=40, temperature=0.9, n=4, stop=(stop,))
    assert cut[0].finish_reason == "stop" and cut[0].text == free[0].text[: free[0].text.index(stop)]
    assert cut[0].completion_tokens < free[0].completion_tokens
    for a, b in zip(free[1:], cut[1:]):  # unaffected by their neighbour leaving the batch
        assert (a.text, a.finish_reason, a.completion_tokens) == (b.text, b.finish_reason, b.completion_tokens)


def test_a_prompt_that_does_not_fit_is_an_error_completion_saying_by_how_much():
    small = create_backend("llamacpp", model="smollm2-135m", n_ctx=64, n_threads=1)
    try:
        prompt = "Count with me: " + "one two three " * 30
        out = gen(small, prompt, max_tokens=8, n=3)
        assert len(out) == 3
        n_prompt = len(small._llama.tokenize(prompt.encode(), add_bos=False, special=True))
        for c in out:
            assert not c.ok and c.text == "" and c.finish_reason == "error" and c.completion_tokens == 0
            assert "does not fit the context" in c.error and f"over by {n_prompt + 1 - 64}" in c.error
            assert c.prompt_tokens == n_prompt and "n_ctx 64" in c.error
        ok = gen(small, "Hi", max_tokens=8, temperature=0.0)  # the backend still works afterwards
        assert ok[0].ok
    finally:
        asyncio.run(small.aclose())


def test_max_tokens_beyond_the_context_is_truncated_like_create_completion_and_warned(caplog):
    small = create_backend("llamacpp", model="smollm2-135m", n_ctx=80, n_threads=1)
    try:
        with caplog.at_level(logging.WARNING, logger="ttclab"):
            out = gen(small, "Write a long story about a dragon.", max_tokens=200, temperature=0.9, n=2,
                      extra_body={"repeat_penalty": 1.3})
            gen(small, "Again.", max_tokens=200, temperature=0.9)
        warnings = [r.getMessage() for r in caplog.records if "max_tokens 200" in r.getMessage()]
        assert len(warnings) == 1 and "n_ctx 80" in warnings[0] and "\n" not in warnings[0]
        for c in out:
            assert c.prompt_tokens + c.completion_tokens <= 80
            if c.finish_reason == "length":
                assert c.prompt_tokens + c.completion_tokens == 80
    finally:
        asyncio.run(small.aclose())


def test_deterministic_across_runs_backend_instances_and_thread_counts(smol):
    params = dict(max_tokens=24, temperature=1.0, n=5)
    first = gen(smol, MESSAGES, **params)
    again = gen(smol, MESSAGES, **params)
    other = create_backend("llamacpp", model="smollm2-135m", n_ctx=512, n_threads=2, max_seqs=2)
    try:
        fresh = gen(other, MESSAGES, **params)
    finally:
        asyncio.run(other.aclose())
    assert [c.text for c in first] == [c.text for c in again] == [c.text for c in fresh]


def test_seed_rule_one_request_of_n_equals_n_requests_of_one_whatever_the_split(smol):
    """Sample j of a request with seed s is the single sample with seed s + j -- exactly, because a
    sequence's tokens do not depend on its batch (own KV stream per sequence, row-wise kernels)."""
    params = dict(max_tokens=24, temperature=0.9)
    batched = gen(smol, MESSAGES, n=7, **params)
    singles = [gen(smol, MESSAGES, seed=SEED + j, n=1, **params)[0] for j in range(7)]
    assert [c.text for c in batched] == [c.text for c in singles]
    tight = create_backend("llamacpp", model="smollm2-135m", n_ctx=1024, n_threads=1, max_seqs=3, kv_budget_mb=0.01)
    try:
        split = gen(tight, MESSAGES, n=7, **params)  # one sequence per batch (the budget), 7 batches
        assert tight._decoder.batch_size(7, 256) == 1
    finally:
        asyncio.run(tight.aclose())
    assert [c.text for c in split] == [c.text for c in batched]


def test_logprobs_are_the_log_softmax_of_the_sampled_tokens(smol, direct):
    from ttclab.backends.llama_batch import SamplerSettings
    from ttclab.backends.llamacpp import render_prompt

    smol._load()
    prompt, _ = render_prompt(smol._llama, Request(MESSAGES), ())
    results = smol._decoder.generate(prompt, [7, 8, 9], SamplerSettings(temperature=1.0), max_tokens=16, stops=[],
                                     logprobs=True)
    for r in results:
        assert r.token_logprobs is not None and len(r.token_logprobs) == r.completion_tokens == len(r.tokens)
        # An independent forward pass with llama-cpp-python: the prompt, then the sampled tokens one at
        # a time (as generation evaluates them; a teacher-forced pass of all tokens in one batch gives
        # logits that differ by up to ~0.2 nats, because llama.cpp's batched prompt evaluation rounds
        # differently from token-by-token evaluation).
        direct.reset()
        direct.eval(prompt)
        for token in r.tokens[:-1]:
            direct.eval([token])
        scores = np.asarray(direct.scores[len(prompt) - 1: len(prompt) - 1 + len(r.tokens)], dtype=np.float64)
        expected = scores[np.arange(len(r.tokens)), list(r.tokens)] - _logsumexp(scores)
        np.testing.assert_allclose(r.token_logprobs, expected, rtol=0, atol=1e-9)
    # Through the backend: one log-prob per completion token, all <= 0, with text and counts unchanged.
    with_lp = gen(smol, MESSAGES, max_tokens=16, temperature=1.0, n=3, logprobs=True)
    without = gen(smol, MESSAGES, max_tokens=16, temperature=1.0, n=3)
    for a, b in zip(with_lp, without):
        assert a.text == b.text and len(a.token_logprobs) == a.completion_tokens
        assert all(lp <= 0 for lp in a.token_logprobs) and b.token_logprobs is None


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def test_first_token_distribution_matches_the_model_softmax(smol, direct):
    """At temperature 1 (no truncation) the first sampled token over many seeds follows softmax(logits).

    Pearson chi-square over the tokens with expected count >= 5 (the rest pooled): for a correct
    sampler the statistic is chi2(df)-distributed, so it exceeds the 1 - 1e-4 quantile for one seed
    set in 10,000. A sampler off by a temperature or a top-k/top-p truncation fails by orders of
    magnitude (checked below with a wrong temperature). The seeds are fixed: the test is deterministic.
    """
    from scipy import stats

    from ttclab.backends.llama_batch import SamplerSettings
    from ttclab.backends.llamacpp import render_prompt

    smol._load()
    prompt, _ = render_prompt(smol._llama, Request("My favourite colour is"), ())
    direct.reset()
    direct.eval(prompt)
    logits = np.asarray(direct.scores[len(prompt) - 1], dtype=np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    n = 1000
    decoder = smol._decoder
    draws = decoder.generate(prompt, list(range(10_000, 10_000 + n)), SamplerSettings(temperature=1.0),
                             max_tokens=1, stops=[], logprobs=False)
    hot = decoder.generate(prompt, list(range(20_000, 20_000 + 300)), SamplerSettings(temperature=1.6),
                           max_tokens=1, stops=[], logprobs=False)

    def chi2_pvalue(results):
        n = len(results)
        counts = np.bincount([r.tokens[0] for r in results if r.tokens], minlength=len(p)).astype(float)
        expected = n * p
        big = expected >= 5
        obs = np.append(counts[big], n - counts[big].sum())
        exp = np.append(expected[big], n - expected[big].sum())
        keep = exp > 0
        stat = ((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()
        return stats.chi2.sf(stat, df=keep.sum() - 1), big.sum()

    assert all(r.tokens for r in draws)  # no end-of-generation as the first token here
    pvalue, categories = chi2_pvalue(draws)
    assert categories >= 5  # a spread distribution, not a near-certain token
    assert pvalue > 1e-4
    wrong, _ = chi2_pvalue(hot)  # the test has power: temperature 1.6 is rejected
    assert wrong < 1e-6
    # Total variation distance, as a readable second check: E[TV] <= 0.5 * sum sqrt(p_i / n).
    counts = np.bincount([r.tokens[0] for r in draws], minlength=len(p)) / n
    tv = 0.5 * np.abs(counts - p).sum()
    assert tv < 2 * 0.5 * np.sqrt(p).sum() / math.sqrt(n)


def test_temperature_zero_is_greedy_and_the_same_for_every_sample(smol, direct):
    out = gen(smol, MESSAGES, max_tokens=20, temperature=0.0, n=3)
    text, *_ = reference(direct, MESSAGES, 0, max_tokens=20, temperature=0.0)
    assert [c.text for c in out] == [text] * 3


def test_unknown_extra_body_key_is_one_config_error_line(smol):
    with pytest.raises(ConfigError, match="mirostat_mode not supported by the llamacpp backend; it takes"):
        gen(smol, MESSAGES, max_tokens=4, extra_body={"mirostat_mode": 2})


def test_large_n_is_split_into_batches_within_the_memory_budget(smol):
    decoder = smol._decoder
    smol._load()
    per_cell = decoder.bytes_per_cell
    assert per_cell == 30 * 3 * (64 + 64) * 2  # SmolLM2: 30 layers, 3 KV heads of 64, f16 K and V
    cells = decoder.cells_for(100, 64)
    assert cells == 256
    assert decoder.batch_size(100, cells) == decoder.max_seqs == 16
    budget_seqs = int(decoder.kv_budget_bytes // (cells * per_cell)) - decoder.PROMPT_STREAMS
    assert decoder.batch_size(10_000, cells) == min(16, budget_seqs)
    before = decoder.stats.contexts_created
    out = gen(smol, MESSAGES, max_tokens=4, temperature=1.0, n=40)  # 3 batches of at most 16
    assert len(out) == 40 and all(c.ok and 0 < c.completion_tokens <= 4 for c in out)
    assert decoder.stats.contexts_created - before <= 1


def test_concurrent_requests_share_decode_steps_and_each_gets_its_own_exact_samples(smol):
    """Requests in flight together (different prompts, sizes, settings, stops, context lengths) are
    decoded in the same steps; each gets exactly what it gets alone."""
    long_prompt = "Summarise: " + "the quick brown fox jumps over the lazy dog. " * 40  # needs a longer stream
    jobs = [
        (Request(MESSAGES, seed=1), SamplingParams(max_tokens=30, temperature=0.9, n=6)),
        (Request("Once upon a time", seed=2), SamplingParams(max_tokens=20, temperature=1.2, n=3, stop=(".",))),
        (Request(long_prompt, seed=3), SamplingParams(max_tokens=10, temperature=0.7, n=2, logprobs=True)),
        (Request(MESSAGES, seed=4), SamplingParams(max_tokens=12, temperature=0.0, n=2)),
    ]
    mixed = create_backend("llamacpp", model="smollm2-135m", n_ctx=1024, n_threads=1, max_seqs=5)
    try:
        async def together():
            return await asyncio.gather(*(mixed.generate(r, p) for r, p in jobs))

        concurrent = asyncio.run(together())
        steps = mixed._decoder.stats.decode_steps
        tokens = mixed._decoder.stats.decoded_tokens
        assert tokens / steps > 2  # the requests did share steps
        alone = [asyncio.run(smol.generate(r, p)) for r, p in jobs]
    finally:
        asyncio.run(mixed.aclose())
    for got, want in zip(concurrent, alone):
        assert [(c.text, c.finish_reason, c.completion_tokens, c.token_logprobs) for c in got] == \
               [(c.text, c.finish_reason, c.completion_tokens, c.token_logprobs) for c in want]


def test_a_cancelled_request_leaves_the_engine_usable(smol):
    async def cancel_one():
        slow = asyncio.ensure_future(smol.generate(Request(MESSAGES, seed=5), SamplingParams(max_tokens=60, n=4)))
        await asyncio.sleep(0.3)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        return await smol.generate(Request(MESSAGES, seed=6), SamplingParams(max_tokens=8, temperature=0.0, n=2))

    out = asyncio.run(cancel_one())
    assert len(out) == 2 and all(c.ok for c in out)
    decoder = smol._decoder
    deadline = time.monotonic() + 30
    while decoder._serving and time.monotonic() < deadline:  # the engine thread finishes its last step
        time.sleep(0.01)
    assert not decoder._serving and not decoder._live and not decoder._admitted
    assert len(decoder._free_slots) == decoder._slots  # the cancelled request's cells were freed


def test_a_prompt_left_in_a_prompt_stream_is_read_again_and_gives_what_a_fresh_evaluation_gives(smol):
    """One sample per request (the runner's single-stream path): a request whose prompt tokens are
    already in a prompt stream reads them instead of evaluating them again, with the same samples."""
    other = ({"role": "user", "content": "Name a colour."},)
    order = [(MESSAGES, 1), (MESSAGES, 2), (other, 3), (MESSAGES, 4), (MESSAGES, 5)]
    params = dict(max_tokens=12, temperature=0.9, n=1)
    reuse = create_backend("llamacpp", model="smollm2-135m", n_ctx=1024, n_threads=1)
    try:
        got = [gen(reuse, prompt, seed=seed, **params)[0].text for prompt, seed in order]
        stats = reuse._decoder.stats
        assert stats.prompts_reused == 3  # MESSAGES stays in one stream while ``other`` takes the second
    finally:
        asyncio.run(reuse.aclose())
    fresh = []
    for prompt, seed in order:
        alone = create_backend("llamacpp", model="smollm2-135m", n_ctx=1024, n_threads=1)
        try:
            fresh.append(gen(alone, prompt, seed=seed, **params)[0].text)
            assert alone._decoder.stats.prompts_reused == 0
        finally:
            asyncio.run(alone.aclose())
    assert got == fresh
