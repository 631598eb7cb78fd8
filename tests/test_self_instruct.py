"""Self-Instruct: the filters (literal cases), the parsers, the resumable deterministic
pipeline (with a scripted generator), the task file as a flanjax task; and the real
generator on SmolLM2 (heavy)."""

from __future__ import annotations

import json
import random

import pytest

from flanjax.data.readers import DataFileError
from flanjax.self_instruct import filtering, pipeline, prompts, task_file
from flanjax.self_instruct.config import SelfInstructConfig
from flanjax.self_instruct.generator import Completion

CFG = filtering.FilterConfig()


# --- filters ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "existing, proposal, score, reason",
    [
        # 5 of 6 tokens in common: F = 5/6
        ("Give three tips for staying healthy.", "Give three tips for staying happy.",
         0.8333, "rouge_overlap"),
        # exactly at the bound (LCS 7 of 10 and 10 tokens): dropped, the rule is < 0.7
        ("a b c d e f g h i j", "a b c d e f g x y z", 0.7, "rouge_overlap"),
        # LCS "sort the in": 2 * 3 / (5 + 5) = 0.6, kept
        ("Sort the numbers in order.", "Sort the list in reverse.", 0.6, None),
        # only "the" in common: P 1/4, R 1/6, F 0.2
        ("Write a poem about the sea.", "Summarize the news article.", 0.2, None),
        # case and punctuation do not count for ROUGE-L tokens (lower-cased alphanumerics)
        ("Translate the sentence into French", "translate THE sentence, into French!",
         1.0, "rouge_overlap"),
        # same text up to case and spacing: caught as a duplicate first
        ("Name a famous painter.", "name  a famous   painter.", 1.0, "duplicate"),
    ],
)  # fmt: skip
def test_rouge_filter_literal_cases(existing, proposal, score, reason):
    pool = filtering.InstructionPool([existing])
    assert filtering.rouge_l(existing, proposal) == pytest.approx(score, abs=1e-4)
    assert pool.max_rouge(proposal) == (pytest.approx(score, abs=1e-4), existing)
    assert pool.reason(proposal, CFG) == reason


def test_rouge_filter_compares_with_every_instruction_in_the_pool():
    pool = filtering.InstructionPool(["Write a poem about the sea.", "Sort the numbers in order."])
    assert pool.max_rouge("Sort the numbers in reverse order.")[1] == "Sort the numbers in order."
    assert pool.reason("Sort the numbers in reverse order.", CFG) == "rouge_overlap"  # 0.9091
    pool.add("Sort the numbers in reverse order.")
    assert pool.reason("Sort numbers in reverse order quickly.", CFG) == "rouge_overlap"
    assert len(pool) == 3


@pytest.mark.parametrize(
    "instruction, reason",
    [
        ("", "empty"),
        (" ?! ", "empty"),
        ("Summarize.", "too_short"),
        ("Explain this", "too_short"),
        ("Explain this idea", None),
        ("word " * 151, "too_long"),
        ("Describe the image below.", "keyword"),
        ("Draw a cat using characters.", "keyword"),
        ("Plot the data as bars.", "keyword"),
        ("Tell me how to go to the station.", "keyword"),
        ("Read the FILE and list its names.", "keyword"),
        ("Explain the mapping between sets.", None),  # "map" only as a whole word
        ("Profile the drawing style of Monet.", None),  # nor "draw" inside "drawing"
        ("- list three fruits please", "bad_start"),
        ("¿Cuál es la capital de Francia?", "bad_start"),
        ("3 reasons to learn history, explained.", None),
    ],
)
def test_surface_filters(instruction, reason):
    assert filtering.surface_reason(instruction, CFG) == reason


def test_clean_instances_drops_empty_same_long_and_repeated():
    long = "x" * 1001
    instances = [
        {"input": " Peru ", "output": " Lima "},
        {"input": "Peru", "output": "lima"},  # repeats the first (case, spaces)
        {"input": "Chile", "output": ""},  # empty output
        {"input": "Same text", "output": "same  text"},  # output echoes input
        {"input": long, "output": "ok"},  # too long
        {"input": "", "output": "A haiku about rain."},  # no input is fine
        {"output": "missing input field"},  # read as an empty input
    ]
    assert filtering.clean_instances(instances, CFG) == [
        {"input": "Peru", "output": "Lima"},
        {"input": "", "output": "A haiku about rain."},
        {"input": "", "output": "missing input field"},
    ]


# --- prompts and parsers -----------------------------------------------------------------
def test_proposal_prompt_and_parse():
    p = prompts.proposal_prompt(["Name a color.", "Add two\nnumbers."])
    assert p == prompts.PROPOSAL_HEADER + "1. Name a color.\n2. Add two numbers.\n3."
    text = " List three birds.\n4. Explain rain to a child.\n5) Give a synonym for big.\nThat"
    assert prompts.parse_proposals(text, finished=False) == [
        "List three birds.",
        "Explain rain to a child.",
        "Give a synonym for big.",
    ]
    # cut off by the token budget in the middle of item 5: item 5 is left out
    cut = " List three birds.\n4. Explain rain to a child.\n5. Give a syn"
    assert prompts.parse_proposals(cut, finished=False) == [
        "List three birds.",
        "Explain rain to a child.",
    ]
    assert prompts.parse_proposals(cut, finished=True)[-1] == "Give a syn"
    assert prompts.parse_proposals(" half an instr", finished=False) == []
    assert prompts.parse_proposals("\n\n", finished=True) == []


def test_classification_prompt_and_parse():
    p = prompts.classification_prompt([("Is it spam?", True), ("Write a poem.", False)], "Tag it.")
    assert p == (
        prompts.CLASSIFICATION_HEADER + "Task: Is it spam?\nClassification: Yes\n\n"
        "Task: Write a poem.\nClassification: No\n\nTask: Tag it.\nClassification:"
    )
    assert prompts.parse_is_classification(" Yes\n") is True
    assert prompts.parse_is_classification(" yes, it is") is True
    assert prompts.parse_is_classification(" No") is False
    assert prompts.parse_is_classification(" Maybe") is False


def test_instance_prompts_input_first_and_output_first():
    demos = [("Capital of the country.", [{"input": "Peru", "output": "Lima"}])]
    assert prompts.instance_prompt(demos, "Plural of the noun.", output_first=False) == (
        prompts.INPUT_FIRST_HEADER + "Task: Capital of the country.\nInput: Peru\nOutput: Lima"
        "\n\nTask: Plural of the noun.\nInput:"
    )
    assert prompts.instance_prompt(demos, "Sentiment of the review.", output_first=True) == (
        prompts.OUTPUT_FIRST_HEADER + "Task: Capital of the country.\nLabel: Lima\nInput: Peru"
        "\n\nTask: Sentiment of the review.\nLabel:"
    )


def test_parse_instances():
    text = " cat\nOutput: cats\nInput: mouse\nOutput: mice\nInput: ox\n\nTask: Next one"
    assert prompts.parse_instances(text, output_first=False) == [
        {"input": "cat", "output": "cats"},
        {"input": "mouse", "output": "mice"},
    ]  # "ox" has no output: left out; the next task is not read
    text = " Positive\nInput: I loved it.\nLabel: Negative\nInput: Dull.\nTask: x"
    assert prompts.parse_instances(text, output_first=True) == [
        {"input": "I loved it.", "output": "Positive"},
        {"input": "Dull.", "output": "Negative"},
    ]
    assert prompts.parse_instances(" \nOutput: A short poem.", output_first=False) == [
        {"input": "", "output": "A short poem."}
    ]
    assert prompts.parse_instances(" nonsense without fields", output_first=False) == []


# --- the pipeline, with a scripted generator --------------------------------------------
class ScriptedGenerator:
    """Deterministic text from (seed, prompt): new instructions from a small vocabulary
    (so some repeat and overlap), Yes for prompts about "label", instances with
    numbered inputs; counts its calls."""

    VERBS = ("Describe", "Summarize", "Explain", "List", "Rewrite", "Classify", "Draw")
    THINGS = ("a river", "the label of a review", "three facts", "a recipe", "an old map")

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts_, *, max_new_tokens, temperature, top_p, seed):
        self.calls += 1
        out = []
        for i, p in enumerate(prompts_):
            r = random.Random(f"{seed}/{temperature}/{i}/{p}")
            if p.endswith("Classification:"):
                task = p.rsplit("Task: ", 1)[1]
                out.append(Completion(" Yes" if "label" in task else " No", True))
            elif p.endswith("Input:"):
                n = r.randrange(3)  # 0: no usable instance
                pairs = "".join(f" in{k}\nOutput: out{k}\nInput:" for k in range(n))
                out.append(Completion(pairs + " dangling", False))
            elif p.endswith("Label:"):
                out.append(Completion(" good\nInput: nice one\nLabel: bad\nInput: awful\n", True))
            else:
                items = [
                    f"{r.choice(self.VERBS)} {r.choice(self.THINGS)} in {r.randrange(9)} words."
                    for _ in range(r.randrange(4))
                ]
                out.append(Completion("\n10. ".join(items) + "\n11. cut", False))
        return out


@pytest.fixture
def seed_file(shared_data):
    return str(shared_data / "train" / "self_instruct_seed_tasks.jsonl")


def _files(out_dir) -> dict[str, str]:
    return {n: (out_dir / n).read_text() for n in (pipeline.LOG, pipeline.TASKS)}


def test_seed_file_holds_the_175_seed_tasks(seed_file):
    seeds = pipeline.read_seed_tasks(seed_file)
    assert len(seeds) == 175
    assert sum(t["is_classification"] for t in seeds) == 26


def test_pipeline_report_and_files(seed_file, tmp_path):
    cfg = SelfInstructConfig(num_proposals=30, seed=3)
    report = pipeline.run(ScriptedGenerator(), seed_file, str(tmp_path), cfg)
    records = [json.loads(line) for line in (tmp_path / pipeline.LOG).read_text().splitlines()]
    tasks = task_file.read_tasks(str(tmp_path / pipeline.TASKS))
    assert report["proposed"] == len(records) == 30
    assert report["kept"] == len(tasks) == sum(r["reason"] is None for r in records)
    assert report["kept"] + sum(report["dropped"].values()) == 30
    assert json.loads((tmp_path / pipeline.REPORT).read_text()) == report
    assert [t["id"] for t in tasks] == [f"si_{k:05d}" for k in range(len(tasks))]
    # every drop has a reason; the scripted vocabulary makes these occur
    for reason in ("keyword", "rouge_overlap", "no_instances"):
        assert report["dropped"][reason] > 0, report
    assert all(filtering.surface_reason(t["instruction"], CFG) is None for t in tasks)
    kept = [t["instruction"] for t in tasks]
    for i, a in enumerate(kept):  # kept instructions overlap each other below 0.7
        assert all(filtering.rouge_l(a, b) < 0.7 for b in kept[:i])
    assert any(t["is_classification"] for t in tasks)  # output-first instances
    cls = next(t for t in tasks if t["is_classification"])
    assert cls["instances"] == [
        {"input": "nice one", "output": "good"},
        {"input": "awful", "output": "bad"},
    ]
    assert "dropped:" in pipeline.format_report(report)


def test_pipeline_is_deterministic_given_its_seed(seed_file, tmp_path):
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cfg = SelfInstructConfig(num_proposals=20, seed=seed)
        pipeline.run(ScriptedGenerator(), seed_file, str(tmp_path / name), cfg)
        runs[name] = _files(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_resume_after_a_kill_gives_the_file_of_one_run(seed_file, tmp_path):
    cfg = SelfInstructConfig(num_proposals=30, seed=5)
    pipeline.run(ScriptedGenerator(), seed_file, str(tmp_path / "one"), cfg)
    want = _files(tmp_path / "one")

    # stopped after two rounds, then rerun: continues the count
    part = tmp_path / "part"
    pipeline.run(ScriptedGenerator(), seed_file, str(part), cfg, max_rounds=2)
    first = _files(part)
    assert want[pipeline.LOG].startswith(first[pipeline.LOG]) and first != want
    pipeline.run(ScriptedGenerator(), seed_file, str(part), cfg)
    assert _files(part) == want

    # killed mid-round: half of round 2's log written, its tasks not
    kill = tmp_path / "kill"
    pipeline.run(ScriptedGenerator(), seed_file, str(kill), cfg, max_rounds=3)
    lines = (kill / pipeline.LOG).read_text().splitlines(keepends=True)
    last_round = json.loads(lines[-1])["round"]
    head = [x for x in lines if json.loads(x)["round"] < last_round]
    tail = lines[len(head) :]
    (kill / pipeline.LOG).write_text("".join(head + tail[:1]) + tail[1][:7])
    tasks = (kill / pipeline.TASKS).read_text().splitlines(keepends=True)
    (kill / pipeline.TASKS).write_text("".join(tasks[:1]))
    pipeline.run(ScriptedGenerator(), seed_file, str(kill), cfg)
    assert _files(kill) == want

    # a finished run reruns as a no-op
    gen = ScriptedGenerator()
    report = pipeline.run(gen, seed_file, str(tmp_path / "one"), cfg)
    assert gen.calls == 0 and report["proposed"] == 30 and _files(tmp_path / "one") == want


def test_resume_with_other_settings_is_refused(seed_file, tmp_path):
    pipeline.run(ScriptedGenerator(), seed_file, str(tmp_path), SelfInstructConfig(num_proposals=5))
    with pytest.raises(ValueError, match=r"config.json: .*other settings \(seed\)"):
        pipeline.run(ScriptedGenerator(), seed_file, str(tmp_path), SelfInstructConfig(seed=9))


# --- the task file as a flanjax task -------------------------------------------------------
def _write_tasks(path, n):
    rows = [
        {"id": f"si_{k:05d}", "instruction": f"Task number {k}.", "is_classification": False,
         "instances": [{"input": "" if k % 2 else f"in {k}", "output": f"out {k}"}],
         "round": 0, "proposal": k}
        for k in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_task_file_registers_as_a_task(tmp_path):
    from flanjax.data import registry

    path = tmp_path / "si_test" / "tasks.jsonl"
    path.parent.mkdir()
    _write_tasks(path, 12)
    info = task_file.register_self_instruct_task(str(path))
    try:
        assert info.name == "self_instruct.si_test" and info.cluster == "self_instruct"
        assert info.num_examples == {"train": 11, "validation": 1}
        assert [r["task_id"] for r in info.records("validation")] == ["si_00009"]
        rec = info.records("train")[1]
        assert rec == {
            "id": "si_00001/0", "task_id": "si_00001", "instruction": "Task number 1.",
            "input": "", "output": "out 1", "prompt": "Task number 1.",
        }  # fmt: skip
        ex = task_file.TEMPLATES[1].render(info.records("train")[0])
        assert (ex.inputs, ex.targets) == (
            "Instruction: Task number 0.\n\nin 0\n\nResponse:",
            "out 0",
        )
        assert registry.get_mixture_or_task("self_instruct.si_test").name == info.name
        # the held-out machinery groups it by its cluster, as it does the FLAN tasks
        import flanjax.tasks  # noqa: F401  (builtin.addition)
        from flanjax.data import heldout

        suite = heldout.ClusterSuite.from_registry("mix", ["builtin.addition", info.name])
        split = suite.split("self_instruct")
        assert (split.train, split.eval) == (("builtin.addition",), (info.name,))
        assert suite.split("arithmetic").train == (info.name,)
    finally:
        registry.unregister(info.name)


def test_tasks_module_reads_the_environment(tmp_path, monkeypatch):
    from flanjax.self_instruct import tasks

    assert tasks.parse_entries(f"/a/tasks.jsonl{':'}my.name=/b/x.jsonl:") == [
        (None, "/a/tasks.jsonl"),
        ("my.name", "/b/x.jsonl"),
    ]
    path = tmp_path / "t.jsonl"
    _write_tasks(path, 1)
    monkeypatch.setenv(tasks.ENV, f"si.one={path}")
    try:
        assert tasks.register_from_env() == ["si.one"]
    finally:
        from flanjax.data import registry

        registry.unregister("si.one")


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", r"bad.jsonl:2: not JSON"),
        ('{"id": "x", "instruction": "A b c.", "is_classification": "no", "instances": []}',
         r"bad.jsonl:2: field 'is_classification' must be a bool"),
        ('{"id": "x", "instruction": "A b c.", "is_classification": false, "instances": []}',
         r"bad.jsonl:2: field 'instances' must be a non-empty list"),
        ('{"id": "x", "instruction": "A b.", "is_classification": false, '
         '"instances": [{"input": "", "output": " "}]}', r"bad.jsonl:2: instances\[0\]: empty"),
        ('{"id": "si_00000", "instruction": "A b.", "is_classification": false, '
         '"instances": [{"input": "", "output": "o"}]}', r"bad.jsonl:2: duplicate id"),
    ],
)  # fmt: skip
def test_malformed_task_file_is_named(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    _write_tasks(path, 1)
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DataFileError, match=message):
        task_file.read_tasks(str(path))


# --- the real generator ------------------------------------------------------------------
def test_model_generator_on_smollm2_is_seeded(smollm2_model_dir):
    from flanjax.self_instruct.generator import ModelGenerator

    gen = ModelGenerator(str(smollm2_model_dir), batch_size=2)
    p = [prompts.proposal_prompt(["Name a color.", "Add two numbers.", "Write a haiku."])] * 3
    kw = dict(max_new_tokens=12, temperature=0.7, top_p=0.95)
    a, b = gen.generate(p, seed=1, **kw), gen.generate(p, seed=1, **kw)
    assert a == b and len(a) == 3
    assert all(isinstance(c.text, str) and c.text for c in a)
    assert a[0].text != a[1].text or a[0].text != a[2].text  # rows are sampled apart
    greedy = gen.generate(p[:1], max_new_tokens=12, temperature=0.0, top_p=1.0, seed=7)
    assert greedy == gen.generate(p[:1], max_new_tokens=12, temperature=0.0, top_p=1.0, seed=8)


def test_command_prints_and_writes_the_report(seed_file, tmp_path, monkeypatch, capsys):
    from flanjax import cli
    from flanjax.self_instruct import generator

    monkeypatch.setattr(generator, "ModelGenerator", lambda *a: ScriptedGenerator())
    argv = ["self-instruct", "--checkpoint", "unused", "--out_dir", str(tmp_path / "si")]
    argv += ["--seed_tasks", seed_file, "--num_proposals", "12", "--seed", "4"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "si" / pipeline.REPORT).read_text())
    assert f"flanjax self-instruct: {pipeline.format_report(report)}" in out
    assert "flanjax self-instruct: round 0: " in out and report["proposed"] == 12


def test_classification_shots_are_the_shortest_seeds_alternating(seed_file):
    from flanjax.self_instruct import rounds

    assert rounds.classification_shots(pipeline.read_seed_tasks(seed_file), 4) == [
        ("Complete the lyrics.", False),
        ("Select the oldest person from the list.", True),
        ("Add things to the list.", False),
        ("Tell if the sentence contains toxic language.", True),
    ]
