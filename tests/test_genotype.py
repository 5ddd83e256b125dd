"""Genotypes: the DARTS text form, JSON, validation."""

from __future__ import annotations

import pytest

from pcdarts_core import KNOWN_GENOTYPES, Genotype, GenotypeError, parse_genotype
from pcdarts_core.known_genotypes import PUBLISHED_TEXT


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_published_genotypes_round_trip_through_text_and_json(name):
    geno = KNOWN_GENOTYPES[name]
    assert Genotype.from_text(geno.to_text()) == geno
    assert Genotype.from_json(geno.to_json()) == geno
    assert parse_genotype(geno.to_json()) == parse_genotype(geno.to_text()) == geno
    assert len(geno.normal) == len(geno.reduce) == 8
    assert list(geno.normal_concat) == list(geno.reduce_concat) == [2, 3, 4, 5]


def test_text_form_matches_the_published_print_for_range_concat():
    # The PC-DARTS genotypes were printed with range(2, 6); ours prints the same text back.
    assert KNOWN_GENOTYPES["PC_DARTS_cifar"].to_text() == PUBLISHED_TEXT["PC_DARTS_cifar"]
    assert KNOWN_GENOTYPES["PC_DARTS_cifar"].normal[0] == ("sep_conv_3x3", 1)
    assert KNOWN_GENOTYPES["DARTS_V2"].reduce[0] == ("max_pool_3x3", 0)


def test_parses_multiline_positional_and_list_concat_forms():
    text = """Genotype(
        [('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1),
         ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)],
        [2, 3, 4, 5],
        reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0),
                ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)],
        reduce_concat=range(2, 6),
    )"""
    geno = Genotype.from_text(text)
    assert geno.normal_concat == (2, 3, 4, 5) == geno.reduce_concat


@pytest.mark.parametrize(
    "text, message",
    [
        ("__import__('os').system('touch /tmp/pwned')", "expected Genotype"),
        (
            "Genotype(normal=[('sep_conv_3x3', 1)] * 8, normal_concat=range(2, 6), reduce=[], reduce_concat=range(2, "
            "6))",
            "only literals",
        ),
        (
            "Genotype(normal=[('conv_9x9', 1), ('sep_conv_3x3', 0)], normal_concat=[2], reduce=[('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 0)], reduce_concat=[2])",
            "unknown operation 'conv_9x9'",
        ),
        (
            "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], normal_concat=[2], reduce=[('sep_conv_3x3', "
            "1), ('sep_conv_3x3', 0)], reduce_concat=[2])",
            "input 2 out of range for node 0",
        ),
        (
            "Genotype(normal=[('none', 1), ('sep_conv_3x3', 0)], normal_concat=[2], reduce=[('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 0)], reduce_concat=[2])",
            "'none' is not allowed in a genotype",
        ),
        (
            "Genotype(normal=[('sep_conv_3x3', 1)], normal_concat=[2], reduce=[('sep_conv_3x3', 1)], "
            "reduce_concat=[2])",
            "two (op, input) edges per node",
        ),
        (
            "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0)], normal_concat=[7], reduce=[('sep_conv_3x3', "
            "1), ('sep_conv_3x3', 0)], reduce_concat=[2])",
            "normal_concat=[7]",
        ),
        (
            "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0)], normal_concat=[2])",
            "missing field(s) reduce, reduce_concat",
        ),
        ("Genotype(normal=[], normal_concat=[2], reduce=[], reduce_concat=[2], extra=1)", "unknown field 'extra'"),
        ("Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "not a Genotype(...) expression"),
        ('{"normal": [["sep_conv_3x3", 1]], "normal_concat": [2]}', "missing keys"),
        ('{"normal": ', "not valid JSON"),
    ],
)
def test_malformed_genotypes_are_rejected_with_a_clear_message(text, message, tmp_path):
    with pytest.raises(GenotypeError) as err:
        parse_genotype(text)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_genotypes_are_values():
    a = KNOWN_GENOTYPES["DARTS_V2"]
    b = Genotype.from_dict(a.to_dict())
    assert a == b and hash(a) == hash(b)
    assert len({a, b, KNOWN_GENOTYPES["DARTS_V1"]}) == 2
