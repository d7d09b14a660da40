"""What `python -m bert.run_squad` does with its options: one run, a seed sweep, or the demo."""

import json

from bert.tasks.squad import fine_tuning, seeds
from bert.tasks.squad.options import SquadOptions
from bert.training import options as opts


def serve_demo(export_dir, question, context):
    """Answers `question` about `context` with an exported SavedModel; returns the dict."""
    from bert import serving

    answer = serving.answer(export_dir, question, context)
    print(json.dumps(answer, ensure_ascii=False))
    return answer


def run(options: SquadOptions) -> dict | None:
    """Fine-tunes, predicts and exports as the options say.

    Returns the eval scores of the predict file, {file stem: scores} for several, the spread
    (as in seed_spread.json) with --seeds, or None without --do_predict.
    """
    hparams = options.validate()
    if options.do_serve_demo:
        serve_demo(options.export_dir, options.question, options.context)
        return None
    strategy = opts.start_runtime(options)
    if options.seed_list:
        return seeds.run_seeds(options, hparams, strategy)
    results = fine_tuning.run_one(options, hparams, strategy)
    if results is None or len(results) > 1:
        return results
    return next(iter(results.values()))
