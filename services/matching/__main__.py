import os

# One BLAS thread: candidate generation's matrix products on a shared 2-core machine ran 1.5x
# the CPU and twice the wall time with two threads fighting the service's own event loop.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from services.matching.app import DEFINITION  # noqa: E402
from shared.service import serve  # noqa: E402

serve(DEFINITION)
