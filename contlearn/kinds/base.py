"""The interface every task kind implements (:mod:`contlearn.kinds`).

Kinds are imported by the ledger's readers and the CLI's fast paths, so this module and every
kind import torch only inside the methods that compute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BadData

if TYPE_CHECKING:
    import torch

    from ..eval.bootstrap import Additive
    from ..train.batching import Encoded


TRAIN_MORE = "train longer (--epochs, --max-train-examples) or with another --lr"


def primary_only(metrics: Sequence[str], primary: str) -> list[str]:
    """``[primary]`` when it was recorded, else every metric (a record from before it was)."""
    return [primary] if primary in metrics else list(metrics)


class TaskKind:
    """One kind of task. Subclasses set ``name``, ``head`` and ``predicts`` and implement the
    methods; the defaults here fit kinds whose canonical output is one row of logits per
    example."""

    name: str = ""
    head: str = "pooled"  # the head type recorded in the artifact config
    predicts: str = ""  # what one prediction is: "class", "value"...

    labels_name_outputs = True  # the head's output i scores label i (they can be reordered)
    needs_decoder = False  # only a decoder backbone (a causal LM) can learn it
    generates = False  # its predictions are generated text (``contlearn generate`` answers it)

    @property
    def role(self) -> str:
        """What the head's outputs mean, as libraries with task heads tell heads apart: its
        head type ("pooled": one row per text, "token": one row per token), unless the kind
        says otherwise (extractive QA: "span", a start and an end logit per token)."""
        return self.head

    # what the data layer recognises a task's rows as ("classification": class labels,
    # "regression": numbers); a kind trains on data of this shape
    reads: str = ""

    def check_data(self, task: str, recognised: str) -> None:
        """Refuse data this kind cannot learn (``recognised``: what the data layer read it
        as), in one line naming the fix."""
        if recognised != self.reads:
            raise BadData(
                f"task {task!r}: its data holds {recognised} labels, which a {self.name} task "
                f"cannot learn: leave out --kind (recognised: {recognised}) or fix the labels"
            )

    def encode(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any] | None = None,
    ) -> Encoded:
        """A split's texts (each row's text fields) as token ids, truncated at ``max_length``
        (``targets``: the rows' targets, for a kind whose inputs depend on them)."""
        from ..train.batching import encode

        return encode(tokenizer, texts, max_length, token_types=token_types)

    def encode_split(
        self,
        tokenizer: Any,
        texts: Sequence[Sequence[str]],
        max_length: int,
        token_types: bool,
        targets: Sequence[Any],
        *,
        training: bool,
        max_new_tokens: int | None = None,
    ) -> Encoded:
        """A data split with its ``targets``: :meth:`encode`, given the targets only for a
        ``training`` split (a kind whose evaluation reads its references, generation, takes
        them for every split; ``max_new_tokens``: its recorded decoding budget)."""
        return self.encode(tokenizer, texts, max_length, token_types, targets if training else None)

    def predict_inputs(self, texts: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
        """Rows as ``predict`` was given them (each row's text fields) -> what :meth:`encode`
        takes."""
        return [tuple(row) for row in texts]

    def routing_text(self, row: Sequence[str]) -> tuple[str, ...]:
        """What routing encodes of one row as :meth:`encode` takes it (a training row, or
        :meth:`predict_inputs` of a row ``predict`` was given): a text or a text pair as they
        are; more fields joined by line breaks into one text."""
        return tuple(row) if len(row) <= 2 else ("\n".join(row),)

    def num_outputs(self, labels: Sequence[str] | None) -> int:
        """The width of the head's output for a task with these labels."""
        raise NotImplementedError

    def encode_targets(self, values: Sequence[Any], labels: Sequence[str] | None) -> list:
        """A split's labels (as the data holds them) as training targets, one per example."""
        raise NotImplementedError

    def target_tensor(self, targets: Sequence[Any], encoded: Encoded | None = None) -> torch.Tensor:
        """Targets (from :meth:`encode_targets`) of the examples ``encoded`` holds, as the
        tensor the loss reads (one row per example)."""
        import torch

        return torch.tensor(list(targets), dtype=torch.float64)

    def batch_targets(
        self, targets: Sequence[Any], encoded: Encoded, idx: Sequence[int]
    ) -> torch.Tensor:
        """The target tensor of the batch of rows ``idx`` of ``encoded`` (whose targets are
        ``targets``)."""
        return self.target_tensor([targets[i] for i in idx], encoded.rows(idx))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of a batch: ``logits`` [B, C] float32, ``targets`` [B] rows of
        :meth:`target_tensor` (any dtype: cast here)."""
        raise NotImplementedError

    def canonical_outputs(
        self,
        model: Any,
        encoded: Encoded,
        *,
        batch_size: int,
        device: Any,
        progress: bool = False,
        desc: str = "evaluating",
        width: int | None = None,
    ) -> torch.Tensor:
        """The canonical evaluation's output tensor for ``encoded`` (the stored and digested
        ``logits``), in original order, by the canonical batches of ``batch_size`` rows:
        the model's logits (``eval.recipe.predict_logits``), unless the kind says otherwise."""
        from ..eval.logits import predict_logits

        return predict_logits(
            model,
            encoded,
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc=desc,
            width=width,
        )

    def predictions(self, logits: torch.Tensor) -> list:
        """What the model predicts for each row of ``logits`` [N, C]: what the canonical
        evaluation scores and digests."""
        raise NotImplementedError

    def read(self, logits: torch.Tensor, encoded: Encoded) -> list:
        """The predictions the canonical evaluation scores, from its outputs and the split
        they were computed on: :meth:`predictions`, unless the kind needs the encoding too."""
        return self.predictions(logits)

    def calibrate(
        self,
        logits: torch.Tensor,
        targets: Sequence[Any],
        labels: Sequence[str] | None,
        metric: str,
    ) -> dict[str, Any] | None:
        """What the kind chooses from the canonical ``logits`` of the selection split (never the
        dev split) after training, to maximise ``metric``: recorded with the task and handed
        back through :meth:`calibrated`; None (the default) when the kind chooses nothing."""
        return None

    def calibrates(self, labels: Sequence[str] | None) -> bool:
        """Whether :meth:`calibrate` chooses anything for a task with these labels."""
        return False

    def calibrated(self, calibration: dict[str, Any] | None) -> TaskKind:
        """This kind deciding as ``calibration`` (what :meth:`calibrate` chose) says; itself
        when there is none or the kind chooses nothing."""
        return self

    def stored_predictions(self, logits: torch.Tensor, tokenizer: Callable[[], Any]) -> list:
        """What the metric scores, from stored canonical outputs without their split (a
        comparison's recorded dev logits): :meth:`predictions`, unless the kind decodes them
        (``tokenizer()`` loads the backbone's tokenizer; only such a kind calls it)."""
        return self.predictions(logits)

    def agreement(self, saved: torch.Tensor, now: torch.Tensor) -> tuple[float, float]:
        """(share of identical predictions, max |logit change|) between two evaluations of the
        same rows under different recipes; (0, inf) when their shapes differ."""
        if saved.shape != now.shape:
            return 0.0, float("inf")
        if len(saved) == 0:
            return 1.0, 0.0
        same = self.same_predictions(saved, now)
        return float(same.float().mean()), float((saved - now).abs().max())

    def same_predictions(self, saved: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
        """Per row of two [N, C] logit tensors: whether the prediction is the same."""
        raise NotImplementedError

    def score(
        self,
        metrics: Sequence[str],
        targets: Sequence[Any],
        predictions: Sequence[Any],
        labels: Sequence[str] | None,
    ) -> dict[str, float]:
        """The ``metrics`` of ``predictions`` (from :meth:`predictions`) against ``targets``."""
        from ..eval.metrics import compute_metrics

        return compute_metrics(
            metrics,
            y_true=list(targets),
            y_pred=list(predictions),
            num_classes=self.num_classes(labels),
        )

    def additive(self, metric: str, labels: Sequence[str] | None) -> Additive | None:
        """``metric`` as counts per example summed over examples (the bootstrap's fast path),
        or None where the kind does not give one."""
        return None

    def score_answers(
        self,
        metric: str,
        values: Sequence[Any],
        answers: Sequence[str | None],
        labels: Sequence[str] | None,
    ) -> float | None:
        """``metric`` of answers as ``predict`` gives them (each row's ``label``, whichever
        task gave it; None: no task answered) against the rows' dev ``values``: routed
        prediction's end-to-end score. None where the kind does not score its answers."""
        return None

    def metrics_agree(self, recorded: dict[str, float], now: dict[str, float]) -> bool:
        """Whether a replay under another recipe scored what was recorded."""
        return recorded == now

    def shown_metrics(self, metrics: Sequence[str], primary: str) -> list[str]:
        """Which of a task's recorded ``metrics`` a one-row summary (the verification table)
        shows: all of them, a kind's few; a kind that adds breakdowns shows ``primary``."""
        return list(metrics)

    def num_classes(self, labels: Sequence[str] | None) -> int | None:
        """What the metric functions take as ``num_classes`` (None: not classes)."""
        return None

    def chance_scores(
        self, metric: str, targets: Sequence[Any], labels: Sequence[str] | None
    ) -> float | None:
        """The score of a model that ignores its input (the forward-transfer reference when
        no separate models were trained); None where there is no such baseline."""
        return None

    def warnings(
        self, task: str, labels: Sequence[str] | None, targets: Sequence, logits: torch.Tensor
    ) -> list[str]:
        """What a user should know about a freshly trained task's dev predictions."""
        return []

    def outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """What ``predict`` returns per row (``texts``: each row's text fields as given):
        ``label`` and ``probabilities`` (or None), and what the kind adds."""
        raise NotImplementedError

    def predict_outputs(
        self,
        logits: torch.Tensor,
        labels: Sequence[str] | None,
        texts: Sequence[Sequence[str]],
        encoded: Encoded,
    ) -> list[dict[str, Any]]:
        """:meth:`outputs` of rows ``predict`` encoded as ``encoded`` (a kind that needs the
        encoding to describe its outputs, generation's tokenizer, reads it)."""
        return self.outputs(logits, labels, texts)

    def describe_outputs(self, labels: Sequence[str] | None) -> str:
        """A task's outputs in words, for messages: ``3 labels``, ``a regression (1 output)``."""
        raise NotImplementedError
