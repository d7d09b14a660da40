# Copyright 2026 The bert-large-batch Authors. Apache-2.0.
"""SQuAD for BERT fine-tuning: one import for data, postprocessing and metric.

* `data.squad_examples`: JSON / Hugging Face datasets -> SquadExample;
  `data.squad_features`: -> InputFeatures; `data.squad_records`: -> TFRecords or
  arrays -> `build_squad_dataset` (tf.data). (`data.squad_data` re-exports all three.)
* `data.squad_postprocess`: RawResult logits -> predictions.json and
  nbest_predictions.json.
* `data.squad_metric`: the official SQuAD v1.1 exact match / F1.

Typical prediction flow:

  examples = read_squad_examples(predict_file, is_training=False)
  features = convert_examples_to_features(examples, tokenizer, is_training=False)
  write_features(features, "eval.tf_record", is_training=False)
  dataset = build_squad_dataset("eval.tf_record", batch_size, 384, is_training=False)
  ... run the model; collect unique_ids, start_logits, end_logits ...
  results = raw_results_from_arrays(unique_ids, start_logits, end_logits)  # drops padding
  predictions = write_predictions(examples, features, results, "predictions.json",
                                  "nbest_predictions.json")
  scores = squad_metric.evaluate(json.load(open(predict_file))["data"], predictions)
"""

# Re-exported public API.
from data import squad_metric  # noqa: F401
from data.squad_examples import (  # noqa: F401
    SquadExample,
    SquadFormatError,
    read_examples,
    read_squad_examples,
    read_squad_hf_examples,
    split_context,
)
from data.squad_features import (  # noqa: F401
    DOC_STRIDE,
    FIRST_UNIQUE_ID,
    MAX_QUERY_LENGTH,
    MAX_SEQ_LENGTH,
    InputFeatures,
    convert_examples_to_features,
    orig_text_of_span,
)
from data.squad_postprocess import (  # noqa: F401
    MAX_ANSWER_LENGTH,
    N_BEST_SIZE,
    RawResult,
    compute_predictions,
    get_final_text,
    prediction_text,
    raw_results_from_arrays,
    write_predictions,
)
from data.squad_records import (  # noqa: F401
    LABEL_KEYS,
    MODEL_INPUT_KEYS,
    PADDING_UNIQUE_ID,
    FeatureWriter,
    build_squad_dataset,
    feature_to_tf_example,
    features_to_arrays,
    write_features,
)
