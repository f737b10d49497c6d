"""How the predictor's per-request loops are compiled (numba): once, before any request.

`kernel(signature)` compiles a function at import for exactly `signature`, so no request waits
for a compilation, whatever the layout of the arrays it hands over (`A` layouts take any).
Compiled code is cached on disk only where the deployment names a cache directory
(NUMBA_CACHE_DIR: the Makefile sets one for tests and the demo, where many predictors start);
the image has a read-only root filesystem and compiles at each start (1 to 3 s here).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba


def kernel(signature: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return numba.njit(signature, cache=bool(numba.config.CACHE_DIR), nogil=True)
