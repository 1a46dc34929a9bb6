"""Property-based tests: random valid graphs prove the passes; random invalid specs are refused.

The generators and the checks are in tests/graph_strategies.py (shared with
benchmarks/fuzz_graphs.py); the hypothesis profile (200 examples a property, derandomized) is in
tests/conftest.py. For every random valid graph: each layer has the shape the textbook formulas
give; archcost validate passes every check (executed shape = inferred, counted multiplies =
analytic MACs, float32 kernels within 1e-4 of the float64 reference, measured peak = predicted
peak); the analysis totals add up, scale with the batch as they must, and match an independent
count of MACs and parameters. Every random invalid spec (a shape rule or a field check must
refuse it) raises an ``ArchcostError`` with a one-line message as the graph is built, and hostile
field values (anything at all) either build, and analyse, or raise one: never an IndexError,
ZeroDivisionError, TypeError, ValueError or OverflowError.
"""

from hypothesis import given, note

from archcost import ops
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.graph import Graph
from tests.graph_strategies import (
    Spec, analysis_problems, build, hostile_outcome, hostile_specs, invalid_problem, invalid_specs, shape_problems,
    valid_specs, validation_problems,
)


@given(valid_specs())
def test_random_valid_graphs_have_the_textbook_shapes_and_validate(spec: Spec):
    note(spec.code())
    g = build(spec)
    problems = shape_problems(spec, g)
    assert not problems, "\n".join(problems)
    problems = validation_problems(spec, g)
    assert not problems, "\n".join(problems)


@given(valid_specs())
def test_random_valid_graphs_have_consistent_analysis_totals(spec: Spec):
    note(spec.code())
    problems = analysis_problems(spec, build(spec))
    assert not problems, "\n".join(problems)


@given(invalid_specs())
def test_random_invalid_specs_are_refused_with_an_archcost_error(spec: Spec):
    note(spec.code())
    problem = invalid_problem(spec)
    assert problem is None, problem


@given(hostile_specs())
def test_hostile_field_values_build_or_raise_an_archcost_error(spec: Spec):
    note(spec.code())
    _, problem = hostile_outcome(spec)
    assert problem is None, problem


# --- what these properties found, kept as plain examples ----------------------------------------


def _refused(make) -> str:
    try:
        make()
    except ArchcostError as exc:
        return str(exc)
    raise AssertionError("accepted")


def test_an_empty_permutation_is_a_shape_error_not_an_index_error():
    g = Graph()
    x = g.input((3, 4, 4))
    assert "Permute: dims () must be a permutation" in _refused(lambda: g.add(ops.Permute(()), x))


def test_an_int_past_float_range_in_a_float_field_is_a_shape_error():
    # math.isfinite(2**1024 - 1) raises OverflowError: the field check itself used to crash.
    huge = 2**1024 - 1
    for make in (lambda: ops.BatchNorm(eps=huge), lambda: ops.Scale(huge), lambda: ops.Dropout(huge)):
        assert "must be float" in _refused(make)


def test_an_int_too_long_to_print_is_refused_by_its_size():
    # str() of a 5,000-digit int raises ValueError, so building the error message used to fail.
    for make in (lambda: ops.Conv2d(10**5000), lambda: ops.Conv2d(4, kernel=(1, 10**5000)),
                 lambda: ops.Reshape((10**5000,)), lambda: Graph().input((3, 10**5000))):
        assert "an integer of more than 1,024 bits" in _refused(make)


def test_a_shape_too_long_to_print_is_named_by_its_bits():
    # 15 axes of 2^1,000 flattened to a 15,001-bit size (4,516 digits), and a message naming it
    # used str(), which raises past 4,300 digits. Inputs now have at most 8 axes (ops.MAX_INPUT_RANK),
    # so the input is refused first; the shape formatter still names such a size by its bits.
    message = _refused(lambda: Graph().input((2**1000,) * 15))
    assert "1 to 8 axes" in message
    assert ops._fmt((1, 2**15000)) == "1x<15,001-bit int>"


def test_receptive_fields_of_huge_strides_are_exact_not_an_overflow():
    # Twelve stride-10^30 convs: the jump is 10^360, past float's range; the receptive field pass
    # did float arithmetic on it and raised OverflowError from analyze.
    g = Graph()
    x = g.input((3, 8, 8))
    for _ in range(12):
        x = g.add(ops.Conv2d(4, 3, stride=10**30, padding=1), x)
    last = analyze(g).records[-1]
    assert last.jump_h == 10**360 and last.rf_h == 1 + 2 * (10**360 - 1) // (10**30 - 1)
    assert last.start_h == 0.0  # each padded 3x3 conv starts its first field on the input's first pixel
