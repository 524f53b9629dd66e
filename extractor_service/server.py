"""gRPC edge of the extractor: thin servicer over FeatureExtractor.

TLS, auth, limits, metrics, logs, health and reflection come from ``serving.runtime``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import grpc

from landmark.v1 import extractor_pb2, extractor_pb2_grpc, features_pb2
from landmark.wire import features_to_proto
from serving import runtime
from serving.interceptor import gone_code
from serving.metrics import Metrics
from serving.security import READ

from .backends import Backend, create_backend
from .batching import BatchedBackend, Expired
from .config import ExtractorConfig
from .decode import FORMATS
from .extractor import Extraction, FeatureExtractor, Limits

log = logging.getLogger(__name__)

SERVICE_NAME = extractor_pb2.DESCRIPTOR.services_by_name["Extractor"].full_name
ROLES = {f"/{SERVICE_NAME}/{m}": READ for m in ("Extract", "ExtractStream", "GetExtractorInfo")}
FEATURE_BUCKETS = (0, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)


class Gone(Exception):
    """The caller went away or its deadline passed before the work started."""


class ExtractorServicer(extractor_pb2_grpc.ExtractorServicer):
    """Converts requests to plain values, calls the core, maps errors to status codes."""

    def __init__(self, config: ExtractorConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.core: FeatureExtractor | None = None
        self.ready = threading.Event()
        self.load_error: BaseException | None = None
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        metrics = metrics or Metrics()
        self._features = metrics.histogram(
            "landmark_extractor_features_per_image",
            "keypoints returned per extracted image",
            FEATURE_BUCKETS,
        )
        self._clipped = metrics.counter(
            "landmark_extractor_keypoints_clipped",
            "keypoints the backend placed just outside the image, clipped to its edge",
        )
        self._dropped = metrics.counter(
            "landmark_extractor_keypoints_dropped",
            "keypoints dropped: far outside the image, or a descriptor not finite or zero",
        )

    def attach(self, backend: Backend) -> None:
        cfg = self.config
        limits = Limits(
            default_max_features=cfg.max_features,
            max_features_limit=cfg.max_features_limit,
            default_max_image_size=cfg.max_image_size,
            max_image_size_limit=max(4096, cfg.max_image_size),
            max_pixels=cfg.max_pixels,
            max_image_bytes=cfg.max_image_bytes,
        )
        if cfg.batch_size > 1:
            backend = BatchedBackend(backend, cfg.batch_size, cfg.batch_delay_ms / 1000.0)
        self.core = FeatureExtractor(backend, limits)
        self.ready.set()

    def _core(self, context: grpc.ServicerContext) -> FeatureExtractor:
        # calls reach a servicer once the server is SERVING, after attach()
        if self.core is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the extractor has no backend")
        assert self.core is not None
        return self.core

    def _run(
        self,
        request: extractor_pb2.ExtractRequest,
        core: FeatureExtractor,
        context: grpc.ServicerContext,
    ) -> Extraction:
        opts = request.options
        threshold = opts.score_threshold if opts.HasField("score_threshold") else None
        scales = tuple(opts.image_scales) or None
        # wait for a free extraction slot no longer than the caller's deadline
        if not self._slots.acquire(timeout=context.time_remaining()):
            raise Gone("no extraction slot became free before the deadline")
        try:
            if not context.is_active():
                raise Gone("the caller went away while waiting for an extraction slot")
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining
            ex = core.extract(
                request.image, opts.max_features, opts.max_image_size, threshold, scales, deadline
            )
        except Expired as exc:
            raise Gone(f"not extracted: {exc}") from None
        finally:
            self._slots.release()
        self._features.observe(len(ex.features))
        self._clipped.inc(ex.conformed.clipped)
        self._dropped.inc(ex.conformed.dropped)
        return ex

    @staticmethod
    def _response(ex: Extraction, request_id: str) -> extractor_pb2.ExtractResponse:
        return extractor_pb2.ExtractResponse(
            features=features_to_proto(ex.features),
            request_id=request_id,
            processed_width=ex.processed_size[0],
            processed_height=ex.processed_size[1],
            extract_ms=ex.extract_ms,
        )

    def Extract(self, request, context):  # noqa: N802 (gRPC method name)
        core = self._core(context)
        try:
            ex = self._run(request, core, context)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Gone as exc:
            context.abort(gone_code(context), str(exc))
        except Exception:
            log.exception("extraction failed")
            context.abort(grpc.StatusCode.INTERNAL, "feature extraction failed; see server log")
        return self._response(ex, request.request_id)

    def ExtractStream(self, request_iterator, context) -> Iterator:  # noqa: N802
        core = self._core(context)
        for request in request_iterator:
            try:
                yield self._response(self._run(request, core, context), request.request_id)
            except Gone as exc:
                context.abort(gone_code(context), str(exc))
            except ValueError as exc:
                yield _item_error(request.request_id, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except Exception:
                log.exception("extraction failed")
                yield _item_error(
                    request.request_id,
                    grpc.StatusCode.INTERNAL,
                    "feature extraction failed; see server log",
                )

    def GetExtractorInfo(self, request, context):  # noqa: N802
        core = self._core(context)
        lim = core.limits
        return extractor_pb2.ExtractorInfo(
            backend=core.backend.name,
            dimension=core.backend.dimension,
            default_max_features=lim.default_max_features,
            max_features_limit=lim.max_features_limit,
            default_max_image_size=lim.default_max_image_size,
            max_image_size_limit=lim.max_image_size_limit,
            max_pixels=lim.max_pixels,
            max_image_bytes=lim.max_image_bytes,
            formats=list(FORMATS),
            device=core.backend.device,
            max_concurrent=self.config.max_concurrent,
        )


def _item_error(request_id: str, code: grpc.StatusCode, message: str):
    return extractor_pb2.ExtractResponse(
        request_id=request_id,
        error=features_pb2.ItemError(code=code.value[0], message=message),
    )


def create_server(
    config: ExtractorConfig,
    backend_factory: Callable[[], Backend] | None = None,
    wait: bool = True,
) -> tuple[runtime.Running, int, ExtractorServicer]:
    """Start the server on ``config.address`` (port 0 = any free port).

    The backend is built and warmed up in a background thread; until then the health
    service says NOT_SERVING and Extract answers UNAVAILABLE. With ``wait`` this call
    returns only once the backend is ready (and raises if loading failed). Returns the
    running server (``.stop(grace)``), its port and the servicer.
    """
    factory = backend_factory or (
        lambda: create_backend(config.backend, config.aliked_settings(), config.delf_settings())
    )
    metrics = Metrics()
    servicer = ExtractorServicer(config, metrics)
    running = runtime.start(
        config,
        {SERVICE_NAME: lambda s: extractor_pb2_grpc.add_ExtractorServicer_to_server(servicer, s)},
        ROLES,
        metrics,
        max_receive_bytes=config.max_image_bytes + (1 << 20),
        thread_prefix="extract",
        starting="the extractor is still loading its backend",
    )

    def load() -> None:
        try:
            backend = factory()
            backend.warmup()
        except BaseException as exc:  # reported by wait_ready / main
            servicer.load_error = exc
            servicer.ready.set()
            return
        servicer.attach(backend)
        running.set_serving(True)
        log.info("extractor ready: backend=%s device=%s", backend.name, backend.device)

    threading.Thread(target=load, name="backend-load", daemon=True).start()
    if wait:
        servicer.ready.wait()
        if servicer.load_error is not None:
            running.stop(0)
            raise servicer.load_error
    return running, running.port, servicer
