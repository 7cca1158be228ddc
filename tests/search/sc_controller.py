"""SC@k written as a code controller (decide(observation) -> action): finish every started trace,
branch until k = beta traces, answer the plurality of the finals (ties: the tied answers, in order of
first appearance, for the environment to draw from: how the built-in SC breaks them)."""


def decide(obs):
    k = min(int(round(obs["beta"])), obs["n_traces"])
    traces = obs["traces"]
    for t in traces:
        if t["state"] == "running":
            return ["FINISH", t["id"]]
    if len(traces) < k:
        return "BRANCH"
    tally = {}
    for t in traces:
        a = t["final"]
        if a is not None and a >= 0:
            tally[a] = tally.get(a, 0) + 1
    if not tally:
        return ["ANSWER", -1]
    top = max(tally.values())
    return ["ANSWER", [a for a, c in tally.items() if c == top]]
