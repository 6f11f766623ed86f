"""The one verifier: what "correct" means for any kernel candidate, generated or hand-written.

    verdict = verify_problem(problem, candidate_from_class(ModelNew))
    verdict.correct, verdict.feedback()

It implements the project's verification rules (shared/notes/verification.md): the harness owns the weights and
copies them into the candidate; eval mode; several seeds and input distributions; held-out sizes; comparison with a
float64 oracle at dtype tolerances (widened by the reference's own error in that dtype); outputs checked for
aliasing; inputs checked unchanged; freed memory poisoned before each candidate run; input sensitivity; launch
counting; and no computing with the PyTorch ops the candidate should replace. The benchmark harness, the
generation loop and the tests use it.
"""

from .check import CandidateFactory, VerifyOptions, candidate_from_class, verify_instance, verify_problem
from .inputs import DISTRIBUTIONS
from .result import Check, Verdict
from .static import check_candidate_source

__all__ = [
    "DISTRIBUTIONS", "CandidateFactory", "Check", "Verdict", "VerifyOptions", "candidate_from_class",
    "check_candidate_source", "verify_instance", "verify_problem",
]  # fmt: skip
