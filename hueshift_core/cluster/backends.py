"""Where workers run: in this process (:class:`LocalBackend`) or as Ray actors (:class:`RayBackend`; ``ray`` is imported
only when this backend is asked for)."""

from __future__ import annotations

from __future__ import annotations

import logging
import os
from collections import deque


from ..errors import InputError
from .worker import Worker

log = logging.getLogger(__name__)



# ---- backends ------------------------------------------------------------------------------------
class LocalBackend:
    """One worker in this process; tasks run one at a time, in order."""

    def __init__(self, model, options, device, threads, on_progress) -> None:
        self.worker = Worker(model, options, device, threads, progress=on_progress)
        self.slots = 1
        self._queue: deque = deque()

    def submit(self, task: dict) -> None:
        self._queue.append(task)

    def wait(self) -> list[tuple[dict, dict]]:
        task = self._queue.popleft()
        return [(task, self.worker.run(task))]

    def progress(self) -> dict[str, int]:
        return {}

    def close(self, interrupted: bool = False) -> None:
        pass


class RayBackend:
    """Ray actors, one task at a time each; a dead actor is replaced and its task handed back to be retried."""

    def __init__(self, address: str, model, options, device, threads, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--ray needs Ray: pip install 'hueshift[cluster]' (or pip install ray)") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": str(threads or 1)}}
            if address == "auto":
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=True, runtime_env=env,
                         logging_level=logging.WARNING)
            else:
                ray.init(address=address, include_dashboard=False, runtime_env=env, logging_level=logging.WARNING)
            self.started = True
        res = ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        cpus = max(1, int(res.get("CPU", 1)))
        if device == "auto":
            device = "cuda" if gpus else "cpu"
        use_gpu = device.startswith("cuda")
        if use_gpu and not gpus:
            raise InputError(f"--device {device}, but the Ray cluster has no GPUs; use --device cpu")
        device = "cuda" if use_gpu else device  # each GPU worker sees only its own GPU
        self.per_cpus = threads or 1
        self.slots = workers or (gpus if use_gpu else max(1, cpus // self.per_cpus))

        @ray.remote(num_cpus=0)
        class Progress:
            def __init__(self):
                self.done: dict[str, int] = {}

            def add(self, key: str, n: int) -> None:
                self.done[key] = self.done.get(key, 0) + n

            def get(self) -> dict[str, int]:
                return self.done

        self.progress_actor = Progress.remote()
        self._actor_cls = ray.remote(Worker).options(num_cpus=self.per_cpus, num_gpus=1 if use_gpu else 0,
                                                     max_restarts=0)
        self._args = (model, options, device, self.per_cpus, self.progress_actor)
        self.idle = [self._actor_cls.remote(*self._args) for _ in range(self.slots)]
        self.busy: dict = {}  # ref -> (actor, task)
        self._queue: deque = deque()
        self._progress: dict[str, int] = {}

    def submit(self, task: dict) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self.idle:
            actor, task = self.idle.pop(), self._queue.popleft()
            self.busy[actor.run.remote(task)] = (actor, task)

    def wait(self, timeout: float = 0.5) -> list[tuple[dict, dict]]:
        ray = self.ray
        ready, _ = ray.wait(list(self.busy), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            actor, task = self.busy.pop(ref)
            try:
                res = ray.get(ref)
                self.idle.append(actor)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as err:
                res = {"error": f"worker died ({type(err).__name__})", "retry": True}
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 — already gone
                    pass
                self.idle.append(self._actor_cls.remote(*self._args))
            except ray.exceptions.RayError as err:
                res = {"error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", "retry": True}
                self.idle.append(actor)
            out.append((task, res))
        self._dispatch()
        return out

    def progress(self) -> dict[str, int]:
        try:
            self._progress = self.ray.get(self.progress_actor.get.remote(), timeout=5)
        except Exception:  # noqa: BLE001 — progress is cosmetic
            pass
        return self._progress

    def close(self, interrupted: bool = False) -> None:
        ray = self.ray
        busy = [a for a, _ in self.busy.values()]
        for actor in [*self.idle, *busy]:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        for actor in busy:  # wait until the killed workers are gone, so none writes after the clean-up
            try:
                ray.get(actor.pid.remote(), timeout=10)
            except Exception:  # noqa: BLE001 — RayActorError once it is dead
                pass
        try:
            ray.kill(self.progress_actor)
        except Exception:  # noqa: BLE001
            pass
        self.idle, self.busy = [], {}
        if self.started:
            ray.shutdown()
