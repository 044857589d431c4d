"""Data processing: count words in shards in parallel (a map over shards), then reduce the
counts into one total — a workflow of three steps.

    python3 examples/shard_reduce.py     (against BATCH_API/BATCH_TOKEN or `batch dev`)
"""
import batchapi as batch

TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "a batch system runs many tasks at once",
    "fair share keeps every team moving",
    "the scheduler packs tasks onto nodes",
]


@batch.task(cpus=0.1, memory="64Mi")
def list_shards():
    """The shards to process (here: line numbers of an in-code corpus; in real use, object URIs)."""
    return list(range(len(TEXT)))


@batch.task(cpus=0.1, memory="64Mi", retries=2)
def count_words(shard):
    words = TEXT[shard].split()
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return counts


@batch.task(cpus=0.1, memory="64Mi")
def merge(per_shard):
    total = {}
    for counts in per_shard:
        for w, n in counts.items():
            total[w] = total.get(w, 0) + n
    return total


if __name__ == "__main__":
    with batch.workflow("word-count") as wf:
        shards = wf.step(list_shards, name="shards")
        counted = wf.map(count_words.options(name="count"), shards.outputs)
        total = wf.step(merge.options(name="merge"), counted.output)  # the counts of every shard, in shard order
    view = wf.wait(timeout=180)
    assert view["phase"] == "Succeeded", view
    result = wf.result(total)
    assert result["the"] == 3 and sum(result.values()) == sum(len(t.split()) for t in TEXT), result
    print(f"ok: {sum(result.values())} words, {len(result)} distinct, \"the\" x{result['the']} (workflow {wf.id})")
