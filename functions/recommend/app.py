"""Recommend: the FastAPI app behind API Gateway (HTTP API, payload v2.0) through Mangum."""

from mangum import Mangum

from recsys.serve.app import create_app

# Built once per Lambda container: the manifest and artifact caches live as long as the container.
# inline: one invocation is one request, so the operations run on the loop's thread (no worker thread per request).
# problem+json is text: without it Mangum base64-encodes error bodies.
handler = Mangum(
    create_app(inline=True), lifespan="off", text_mime_types=["application/json", "application/problem+json", "text/"]
)
