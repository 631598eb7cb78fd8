"""Self-Instruct (Wang et al., 2023): grow a task set from 175 seed tasks with a model.

`flanjax self-instruct` (commands/self_instruct.py) runs `pipeline.run`: prompts
(prompts.py) sampled from the seed and already generated instructions make the
model propose new ones, filters (filtering.py) drop near-duplicates (ROUGE-L >= 0.7),
bad lengths and what a text model cannot do, the model classifies each survivor and
writes its instances (rounds.py), and the kept tasks go to a task file
(task_file.py) that `register_self_instruct_task` registers as a flanjax task
(`flanjax.self_instruct.tasks` does it from $FLANJAX_SELF_INSTRUCT for any command).
The generator (generator.py) is any flanjax checkpoint.
"""

from flanjax.self_instruct.task_file import register_self_instruct_task

__all__ = ["register_self_instruct_task"]
