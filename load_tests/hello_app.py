"""The smallest Ray Serve app: the baseline for cold start and memory (what Ray Serve itself costs)."""

from ray import serve


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Hello:
    async def __call__(self, request: object) -> str:
        return "ok"


app = Hello.bind()
