"""Image -> digit string: find the digits, run them through the model in one batch (and through the
digit gate, which tells digits from letters, signs and scribbles)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_harness import contract
from firmware_harness.preprocess import Digit, find_digits
from firmware_harness.runtime import Model, load_gate

WORD_GAP = 0.5  # marks side by side closer than this many of the taller one's height are one word
TEXT_WORD = 3  # a word of at least this many marks, under half of them digits by the gate, is text


@dataclass
class Reading:
    """What was read in one image: digits in reading order, one confidence and box each."""

    digits: str
    confidences: list[float]
    boxes: list[list[int]]
    crops: np.ndarray = field(repr=False)  # (N, 28, 28) uint8: what the model saw
    lines: list[int] = field(default_factory=list)

    def shown(self, min_confidence: float = 0.0) -> str:
        """The digits, with '?' for each one read with less than `min_confidence`."""
        return "".join(d if c >= min_confidence else "?" for d, c in zip(self.digits, self.confidences))

    def line_texts(self, min_confidence: float = 0.0) -> list[str]:
        """The digits of each text line, top to bottom."""
        texts: dict[int, str] = {}
        for char, line in zip(self.shown(min_confidence), self.lines):
            texts[line] = texts.get(line, "") + char
        return [texts[k] for k in sorted(texts)]

    def as_json(self, min_confidence: float = 0.0) -> dict:
        """digits (all, in reading order), lines (the digits of each line), line (each digit's line number),
        confidences and boxes."""
        return {"digits": self.shown(min_confidence), "lines": self.line_texts(min_confidence), "line": self.lines,
                "confidences": [round(c, 4) for c in self.confidences], "boxes": self.boxes}

    def as_text(self, min_confidence: float = 0.0) -> str:
        """One line for a terminal: the lines separated by ' / ', then the confidences."""
        text = " / ".join(self.line_texts(min_confidence)) or "(no digits)"
        confidences = " ".join(f"{c:.2f}" for c in self.confidences)
        return text + (f"  ({confidences})" if confidences else "")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def text_shares(found: list[Digit], digit_chance: np.ndarray) -> np.ndarray:
    """For each mark, the share of its word's marks that the gate takes for digits (chance 0.5 or more) where
    the word is text (TEXT_WORD marks or more, under half of them digits), else 1: an O or an l among letters
    is a letter. A word is a group of marks each beside another of the group (`_beside`), wherever the
    reading order puts them: a tilted word split over two lines is one word."""
    shares = np.ones(len(found))
    for members in _groups(len(found), _beside(np.array([d.box for d in found]).reshape(-1, 4))):
        share = float(np.mean(digit_chance[members] >= 0.5))
        if len(members) >= TEXT_WORD and share < 0.5:
            shares[members] = share
    return shares


def _beside(boxes: np.ndarray) -> np.ndarray:
    """(i, j) pairs, i < j, of boxes side by side: closer than WORD_GAP of the taller one's height across and
    sharing at least half the shorter one's rows."""
    x, y, w, h = (boxes[:, k, None] for k in range(4))
    gap = np.maximum(x.T - (x + w), x - (x.T + w.T))
    shared = np.minimum(y + h, (y + h).T) - np.maximum(y, y.T)
    near = (gap < WORD_GAP * np.maximum(h, h.T)) & (2 * shared >= np.minimum(h, h.T))
    return np.argwhere(np.triu(near, 1))


def _groups(n: int, pairs: np.ndarray) -> list[list[int]]:
    """The connected groups of 0..n-1 under `pairs`, each in ascending order."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        parent[root(int(j))] = root(int(i))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def classify(model: Model, found: list[Digit], gate: Model | None = None) -> Reading:
    """Run the found digits through the model as one batch. With a `gate`, each confidence is the chance
    that the mark is a digit at all (the gate's) times the chance that it is this digit (the model's), and
    in a word of letters (`text_shares`) times the share of digits in it."""
    if not found:
        return Reading("", [], [], np.zeros((0, 28, 28), np.uint8))
    crops = np.stack([d.image for d in found])
    probabilities = softmax(model.predict(crops))
    best = probabilities.argmax(axis=1)
    confidences = probabilities[np.arange(len(best)), best]
    if gate is not None:
        digit_chance = softmax(gate.predict(crops))[:, contract.GATE_DIGIT]
        confidences = confidences * digit_chance * text_shares(found, digit_chance)
    return Reading(
        digits="".join(model.labels[int(d)] for d in best),
        confidences=[float(p) for p in confidences],
        boxes=[list(d.box) for d in found],
        crops=crops,
        lines=[d.line for d in found],
    )


def read(model: Model, image: np.ndarray, gate: Model | None = None) -> Reading:
    """All digits in a gray/BGR/BGRA image, in reading order."""
    return classify(model, find_digits(image), gate)


def gate_for(model: Model) -> Model | None:
    """The digit gate on the model's interpreter, for a model that reads the digits 0-9; None for other
    labels (or without a gate)."""
    return load_gate(model.backend.name, model.threads, model.kernels) if model.labels == contract.LABELS else None
