"""Scheduling parameters: every rule of the template language, pinned with real dates."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from backfill_ctl.core.params import (
    Context,
    ParamError,
    Template,
    compile_command,
    compile_parameters,
    compile_template,
    env_name,
    environment,
)
from backfill_ctl.errors import BackfillError

CTX = Context(
    bizdate=date(2024, 3, 1),
    cyctime=datetime(2024, 3, 2, 2, 0),
    taskid="t-42",
    nodeid="dwd_orders",
    jobid="fix-orders",
)


def render(text: str, ctx: Context = CTX) -> str:
    return compile_template(text).render(ctx)


def at(bizdate: date, cyctime: datetime | None = None) -> Context:
    return Context(bizdate=bizdate, cyctime=cyctime or datetime(2000, 1, 1))


def error(text: str, parameters: dict[str, Template] | None = None) -> ParamError:
    with pytest.raises(ParamError) as caught:
        compile_template(text, parameters)
    return caught.value


# --- ${...}: the business date -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${yyyymmdd}", "20240301"),
        ("${yyyy-mm-dd}", "2024-03-01"),
        ("${yyyy/mm/dd}", "2024/03/01"),
        ("${yyyy.mm.dd}", "2024.03.01"),
        ("${yyyy_mm}", "2024_03"),
        ("${dd:mm yy}", "01:03 24"),
        ("${yyyymmdd-7}", "20240223"),
        ("${yyyymmdd+1}", "20240302"),
        ("${yyyymmdd-1}", "20240229"),  # leap day
        ("${yyyy-mm-dd-1}", "2024-02-29"),  # format yyyy-mm-dd, offset -1 day
        ("${yyyymm-1}", "202402"),
        ("${yyyymm+10}", "202501"),
        ("${yyyy-1}", "2023"),
        ("${yyyy+2}", "2026"),
        ("${yy}", "24"),
        ("${yy-1}", "23"),
        ("${mm}", "03"),
        ("${dd-1}", "29"),
        ("${mmdd-1}", "0229"),
        ("${yyyymmdd-0}", "20240301"),
    ],
)
def test_business_date_expressions(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("bizdate", "text", "expected"),
    [
        (date(2024, 1, 1), "${yyyymmdd-1}", "20231231"),
        (date(2024, 1, 1), "${yyyymm-1}", "202312"),
        (date(2024, 1, 15), "${yyyymm-13}", "202212"),
        (date(2023, 12, 31), "${yyyymmdd+1}", "20240101"),
        (date(2024, 3, 31), "${yyyymmdd}", "20240331"),  # no offset: no clamping
        (date(2024, 3, 31), "${yyyymm-1}", "202402"),
        (date(2023, 3, 31), "${yyyymm-1}", "202302"),
        (date(2024, 2, 29), "${yyyy-1}", "2023"),
        (date(2005, 6, 1), "${yy}", "05"),
        (date(2005, 6, 1), "${yy-6}", "99"),
    ],
)
def test_business_date_boundaries(bizdate: date, text: str, expected: str) -> None:
    assert render(text, at(bizdate)) == expected


# --- $[...]: the scheduled time -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$[yyyymmddhh24miss]", "20240302020000"),
        ("$[yyyy-mm-dd hh24:mi:ss]", "2024-03-02 02:00:00"),
        ("$[yyyymmdd]", "20240302"),
        ("$[yyyymmdd-1]", "20240301"),
        ("$[yyyymmdd+1]", "20240303"),
        ("$[yyyymmddhh24-1/24]", "2024030201"),
        ("$[yyyymmddhh24-3/24]", "2024030123"),
        ("$[hh24mi-15/24/60]", "0145"),
        ("$[hh24mi+15/24/60]", "0215"),
        ("$[hh24]", "02"),
        ("$[mi]", "00"),
        ("$[yy]", "24"),
        ("$[add_months(yyyymmdd,-1)]", "20240202"),
        ("$[add_months(yyyymmdd,1)]", "20240402"),
        ("$[add_months(yyyymmdd,+12)]", "20250302"),
        ("$[add_months(yyyy-mm, -1)]", "2024-02"),
    ],
)
def test_scheduled_time_expressions(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("cyctime", "text", "expected"),
    [
        (datetime(2024, 3, 31, 2, 0), "$[add_months(yyyymmdd,-1)]", "20240229"),
        (datetime(2023, 3, 31, 2, 0), "$[add_months(yyyymmdd,-1)]", "20230228"),
        (datetime(2024, 1, 31, 2, 0), "$[add_months(yyyymmdd,1)]", "20240229"),
        (datetime(2024, 5, 31, 2, 0), "$[add_months(yyyymmdd,-1)]", "20240430"),
        (datetime(2024, 1, 15, 2, 0), "$[add_months(yyyymmdd,-1)]", "20231215"),
        (datetime(2024, 3, 31, 2, 0), "$[add_months(hh24mi,-1)]", "0200"),
        (datetime(2024, 1, 1, 0, 10), "$[yyyymmddhh24mi-15/24/60]", "202312312355"),
        (datetime(2024, 1, 1, 0, 30), "$[yyyymmddhh24-1/24]", "2023123123"),
        (datetime(2023, 12, 31, 23, 59, 59), "$[yyyymmddhh24miss+1/24/60]", "20240101000059"),
        (datetime(2024, 3, 1, 0, 0), "$[yyyymmdd-1]", "20240229"),
        (datetime(2024, 3, 2, 2, 0, 7), "$[ss]", "07"),
    ],
)
def test_scheduled_time_boundaries(cyctime: datetime, text: str, expected: str) -> None:
    assert render(text, at(date(2024, 1, 1), cyctime)) == expected


# --- built-ins, $other, $$ ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$bizdate", "20240301"),
        ("$cyctime", "20240302020000"),
        ("$bizmonth", "202403"),
        ("$jobid", "fix-orders"),
        ("$nodeid", "dwd_orders"),
        ("$taskid", "t-42"),
        ("pt=$bizdate,h=$[hh24]", "pt=20240301,h=02"),
        ("$bizdate-1", "20240301-1"),  # no offsets on built-ins
        ("$bizdateX", "$bizdateX"),  # whole words only
        ("$bizdate_1", "$bizdate_1"),
        ("$BIZDATE", "$BIZDATE"),
        ("$HOME/x", "$HOME/x"),
        ("echo $1 $(date) $ a$", "echo $1 $(date) $ a$"),
        ("$${HOME}", "${HOME}"),
        ("$$bizdate", "$bizdate"),
        ("$$$bizdate", "$20240301"),
        ("$$[hh]", "$[hh]"),  # escaped: not an expression, so not an error
        ("$$", "$"),
        ("cost: 5$$", "cost: 5$"),
    ],
)
def test_builtins_and_dollars(text: str, expected: str) -> None:
    assert render(text) == expected


def test_gmtdate_stays_literal_until_the_run_date_is_known() -> None:
    template = compile_template("--run $gmtdate --pt $bizdate")
    assert not template.is_constant
    assert template.render(CTX) == "--run $gmtdate --pt 20240301"
    at_run = Context(CTX.bizdate, CTX.cyctime, gmtdate=date(2024, 4, 5))
    assert template.render(at_run) == "--run 20240405 --pt 20240301"
    command = compile_command("--run $gmtdate --pt $bizdate")
    assert command.render_shell(CTX) == "--run '$gmtdate' --pt 20240301"
    assert command.render_shell(at_run) == "--run 20240405 --pt 20240301"


@pytest.mark.parametrize(
    ("text", "bound", "per_tick"),
    [
        ("--node=$nodeid/$jobid", "--node=dwd_orders/fix-orders", False),
        ("$gmtdate/${yyyymmdd}", "$gmtdate/20240301", False),
        ("$nodeid-$[hh24]", "dwd_orders-02", True),
        ("$taskid@$nodeid", "t-42@dwd_orders", True),
        ("$cyctime", "20240302020000", True),
    ],
)
def test_bind_makes_the_node_fields_text_and_keeps_the_rest(
    text: str, bound: str, per_tick: bool
) -> None:
    """A template bound to a node's context renders as the template does in any context
    of that node; it reads the tick only when it reads the scheduled time or $taskid."""
    template = compile_template(text).bind(CTX)
    other = Context(CTX.bizdate, CTX.cyctime, CTX.taskid, "someone-else", "other-job")

    assert template.render(other) == bound == compile_template(text).render(CTX)
    assert template.per_tick is per_tick
    node_only = compile_template("$nodeid $jobid").bind(CTX)
    assert (node_only.constant, node_only.per_tick) == ("dwd_orders fix-orders", False)


def test_templates_bound_to_equal_parts_are_one_object() -> None:
    """The planner renders a bound template once per date for all the nodes sharing it."""
    one = compile_parameters([("pt", "${yyyymmdd}")])["pt"]
    other = compile_template("$bizdate")

    assert one.bind(CTX) is other.bind(CTX)
    assert compile_template("$nodeid/$bizdate").bind(CTX) is not one.bind(CTX)


# --- parameters -----------------------------------------------------------------------


def test_parameter_references_and_chains() -> None:
    params = compile_parameters(
        [("pt", "${yyyymmdd}"), ("path", "/data/${pt}/x"), ("uri", "hdfs://${path}?h=$[hh24]")]
    )
    assert list(params) == ["pt", "path", "uri"]
    assert [t.render(CTX) for t in params.values()] == [
        "20240301",
        "/data/20240301/x",
        "hdfs:///data/20240301/x?h=02",
    ]
    assert params["uri"].parameters == {"path"}  # direct references only
    assert params["pt"].parameters == frozenset()
    command = compile_template("--in ${path} --pt ${pt}", params)
    assert command.parameters == {"path", "pt"}
    assert command.render(CTX) == "--in /data/20240301/x --pt 20240301"


def test_references_may_come_before_their_definition() -> None:
    params = compile_parameters([("path", "/data/${pt}"), ("pt", "${yyyymmdd-1}")])
    assert params["path"].render(CTX) == "/data/20240229"


def test_a_named_parameter_shadows_a_time_expression() -> None:
    params = compile_parameters([("yyyymmdd", "fixed")])
    assert compile_template("${yyyymmdd}", params).render(CTX) == "fixed"
    assert compile_template("${yyyymmdd}").render(CTX) == "20240301"


def test_is_constant() -> None:
    params = compile_parameters([("table", "orders"), ("pt", "${yyyymmdd}")])
    assert compile_template("python", params).is_constant
    assert compile_template("$HOME $${x}", params).is_constant
    assert compile_template("t=${table}", params).is_constant
    assert compile_template("t=${table}", params).render(CTX) == "t=orders"
    assert not compile_template("${pt}", params).is_constant
    assert not compile_template("$taskid").is_constant
    assert compile_template("$${HOME}").text == "$${HOME}"


def test_override_replaces_in_place_and_adds_at_the_end() -> None:
    params = compile_parameters(
        [("pt", "${yyyymmdd}"), ("path", "/data/${pt}")],
        [("pt", "${yyyymmdd-1}"), ("full_refresh", "true")],
    )
    assert list(params) == ["pt", "path", "full_refresh"]
    assert params["pt"].render(CTX) == "20240229"
    assert params["path"].render(CTX) == "/data/20240229"
    assert params["full_refresh"].render(CTX) == "true"


def test_override_may_reference_node_parameters() -> None:
    params = compile_parameters([("pt", "${yyyymmdd}")], [("out", "/tmp/${pt}")])
    assert params["out"].render(CTX) == "/tmp/20240301"


@pytest.mark.parametrize(
    ("node", "overrides", "cycle", "parameter"),
    [
        ([("a", "${b}"), ("b", "${a}")], [], "a -> b -> a", "a"),
        ([("a", "x${b}"), ("b", "${c}"), ("c", "${b}")], [], "b -> c -> b", "b"),
        ([("a", "${a}")], [], "a -> a", "a"),
        ([("pt", "${yyyymmdd}")], [("pt", "${pt}-1")], "pt -> pt", "pt"),
    ],
)
def test_cycles_are_errors(
    node: list[tuple[str, str]], overrides: list[tuple[str, str]], cycle: str, parameter: str
) -> None:
    with pytest.raises(ParamError) as caught:
        compile_parameters(node, overrides)
    assert caught.value.message == f"parameter cycle: {cycle}"
    assert caught.value.parameter == parameter


def test_a_bad_parameter_is_named_even_when_unused() -> None:
    with pytest.raises(ParamError) as caught:
        compile_parameters([("pt", "${yyyymmdd}"), ("h", "$[hh]")])
    assert caught.value.parameter == "h"
    assert caught.value.message.startswith("invalid scheduled-time expression $[hh]")


def test_a_bad_reference_names_the_parameter_that_holds_it() -> None:
    with pytest.raises(ParamError) as caught:
        compile_parameters([("path", "/data/${pt}"), ("pt", "${yyyymmd}")])
    assert caught.value.parameter == "pt"


def test_parameters_that_share_an_environment_variable_are_an_error() -> None:
    with pytest.raises(ParamError) as caught:
        compile_parameters([("pt", "1")], [("PT", "2")])
    assert caught.value.message == (
        "parameters pt and PT both map to environment variable BACKFILL_PARAM_PT"
    )
    assert caught.value.parameter == "PT"


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${foo}", "unknown parameter or time expression ${foo}"),
        ("${HOME}", "unknown parameter or time expression ${HOME}"),
        ("${bizdate}", "unknown parameter or time expression ${bizdate}"),
        ("${yyyymmdd-x}", "unknown parameter or time expression ${yyyymmdd-x}: unexpected 'x'"),
        (
            "${YYYYMMDD}",
            "unknown parameter or time expression ${YYYYMMDD}: "
            "unexpected 'YYYYMMDD' (tokens are lower case)",
        ),
        (
            "${yyyymmddhh24}",
            "unknown parameter or time expression ${yyyymmddhh24}: "
            "unexpected 'hh24' (hours, minutes and seconds exist only in $[...])",
        ),
        (
            "${yyyymmdd--1}",
            "unknown parameter or time expression ${yyyymmdd--1}: "
            "separator '-' is not between two tokens",
        ),
        ("${}", "unknown parameter or time expression ${}: no format"),
        (
            "${yyyymmdd-36601}",
            "unknown parameter or time expression ${yyyymmdd-36601}: "
            "offset -36601 is too large (at most 36600 days)",
        ),
        (
            "${yyyy-1" + "0" * 5000 + "}",
            "unknown parameter or time expression ${yyyy-1" + "0" * 5000 + "}: "
            "offset -1" + "0" * 5000 + " is too large (at most 100 years)",
        ),
        (
            "$[hh]",
            "invalid scheduled-time expression $[hh]: unexpected 'hh' (hours are written hh24)",
        ),
        (
            "$[yyyymmddhh]",
            "invalid scheduled-time expression $[yyyymmddhh]: "
            "unexpected 'hh' (hours are written hh24)",
        ),
        (
            "$[yyyymmdd-1/60]",
            "invalid scheduled-time expression $[yyyymmdd-1/60]: unexpected '1/60'",
        ),
        ("$[]", "invalid scheduled-time expression $[]: no format"),
        (
            "$[add_months(yyyymmdd)]",
            "invalid scheduled-time expression $[add_months(yyyymmdd)]: "
            "expected add_months(format,months)",
        ),
        (
            "$[add_months(yyyymmdd,-1201)]",
            "invalid scheduled-time expression $[add_months(yyyymmdd,-1201)]: "
            "offset -1201 is too large (at most 1200 months)",
        ),
        ("run ${pt", "unterminated ${ in 'run ${pt'"),
        ("run $[hh24", "unterminated $[ in 'run $[hh24'"),
    ],
)
def test_compile_errors(text: str, message: str) -> None:
    assert error(text).message == message


def test_error_details_and_hints() -> None:
    bad = error("${pr}", compile_parameters([("pt", "${yyyymmdd}"), ("day", "$[dd]")]))
    assert isinstance(bad, BackfillError)
    assert bad.parameter is None
    assert str(bad) == "unknown parameter or time expression ${pr}"
    assert bad.hint is not None
    assert bad.hint.endswith("; defined parameters: day, pt")
    assert "$${...}" in bad.hint
    assert error("${bizdate}").hint.startswith("did you mean $bizdate?")  # type: ignore[union-attr]
    assert "hh24" in (error("$[hh]").hint or "")


# --- string commands: render_shell -----------------------------------------------------


SHELL_PARAMS = [("pt", "${yyyymmdd}"), ("table", "my table"), ("path", "/data/${pt}/a b")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run ${table}", 'run "${BACKFILL_PARAM_TABLE}"'),
        ("--pt=${pt}x", '--pt="${BACKFILL_PARAM_PT}"x'),
        ("echo 'a ${pt} b'", "echo 'a '\"${BACKFILL_PARAM_PT}\"' b'"),
        ('echo "a ${pt}x $HOME"', 'echo "a ${BACKFILL_PARAM_PT}x $HOME"'),
        ('echo "it\'s ${pt}"', 'echo "it\'s ${BACKFILL_PARAM_PT}"'),
        ("echo '\"' ${pt}", 'echo \'"\' "${BACKFILL_PARAM_PT}"'),
        ('echo "$(cat ${path})"', 'echo "$(cat "${BACKFILL_PARAM_PATH}")"'),
        ("echo \"$(echo '${pt}')\"", "echo \"$(echo ''\"${BACKFILL_PARAM_PT}\"'')\""),
        ("(cd x && run ${pt})", '(cd x && run "${BACKFILL_PARAM_PT}")'),
        ("echo \\' ${pt}", 'echo \\\' "${BACKFILL_PARAM_PT}"'),
        (
            "run # don't ${pt}\nrun ${pt}",
            'run # don\'t ${BACKFILL_PARAM_PT}\nrun "${BACKFILL_PARAM_PT}"',
        ),
        ("a#${pt}", 'a#"${BACKFILL_PARAM_PT}"'),  # not a comment: # inside a word
        (
            "cat <<EOF\n'${pt}' \"x\"\nEOF\nrun ${pt}",
            'cat <<EOF\n\'${BACKFILL_PARAM_PT}\' "x"\nEOF\nrun "${BACKFILL_PARAM_PT}"',
        ),
        (
            "cat <<-EOF; echo '${pt}'\n\t${pt}\n\tEOF",
            "cat <<-EOF; echo ''\"${BACKFILL_PARAM_PT}\"''\n\t${BACKFILL_PARAM_PT}\n\tEOF",
        ),
        (
            "cat <<A <<'B'\n${pt}\nA\nplain\nB\n${pt}",
            "cat <<A <<'B'\n${BACKFILL_PARAM_PT}\nA\nplain\nB\n\"${BACKFILL_PARAM_PT}\"",
        ),
        ("cat <<<${pt}", 'cat <<<"${BACKFILL_PARAM_PT}"'),
        ("cat <<EOF\n$(echo ${pt})\nEOF", 'cat <<EOF\n$(echo "${BACKFILL_PARAM_PT}")\nEOF'),
        (
            "echo `date` ${pt} $((1+2)) ${pt}",
            'echo `date` "${BACKFILL_PARAM_PT}" $((1+2)) "${BACKFILL_PARAM_PT}"',
        ),
        ("echo $${HOME:-x} ${pt}", 'echo ${HOME:-x} "${BACKFILL_PARAM_PT}"'),
    ],
)
def test_a_string_command_reads_each_parameter_from_its_variable(text: str, expected: str) -> None:
    template = compile_command(text, compile_parameters(SHELL_PARAMS))
    assert template.render_shell(CTX) == expected
    # `render` (argv elements, env values) still gives the values themselves.
    assert template.render(CTX) == compile_template(text, compile_parameters(SHELL_PARAMS)).render(
        CTX
    )


def test_a_parameter_only_command_is_one_text_for_every_instance() -> None:
    params = compile_parameters([("pt", "${yyyymmdd}"), ("hour", "$[hh24]")])
    template = compile_command("load --pt ${pt} --hour ${hour}", params)
    other = Context(date(2024, 5, 6), datetime(2024, 5, 7, 3, 0))
    assert template.render_shell(CTX) == template.render_shell(other)


def test_time_expressions_and_built_ins_stay_inline_one_word_when_bare() -> None:
    ctx = Context(CTX.bizdate, CTX.cyctime, jobid="fix-orders")
    text = "run ${yyyy mm} '${yyyy mm}' \"$jobid\" $bizdate `echo $bizdate` $$(( $bizdate + 1 ))"
    assert compile_command(text).render_shell(ctx) == (
        "run '2024 03' '2024 03' \"fix-orders\" 20240301 `echo 20240301` $(( 20240301 + 1 ))"
    )
    assert compile_command("a;b").render_shell(ctx) == "a;b"
    with pytest.raises(TypeError):
        compile_template("run ${yyyy}").render_shell(ctx)  # not compiled for a shell


@pytest.mark.parametrize(
    ("text", "says", "hint"),
    [
        ("echo `cat ${pt}`", "inside `...`", "write $(...) instead"),
        ('echo "`cat ${pt}`"', "inside `...`", "write $(...) instead"),
        ("echo $$(( ${pt} + 1 ))", "inside arithmetic", "checks it is a number"),
        ("(( ${pt} > 1 )) && run", "inside arithmetic", "checks it is a number"),
        ("echo $$(( $$(cat ${pt}) ))", "inside arithmetic", "checks it is a number"),
        ("echo $${x:-${pt}}", "the shell's own $${...}", "(v=${pt})"),
        ("echo $$'a ${pt}'", "inside $'...'", "use '...'"),
        ("echo \\${pt}", "right after a backslash", "$${pt} is a literal ${pt}"),
        ('echo "\\${pt}"', "right after a backslash", "$${pt} is a literal ${pt}"),
        ('echo "$$${pt}"', "right after a $", "separate"),
        ("cat <<'EOF'\n${pt}\nEOF", "delimiter is quoted", "BACKFILL_PARAM_PT in what"),
        ("cat <<\\EOF\n${pt}\nEOF", "delimiter is quoted", "unquote the delimiter"),
        ("cat <<E${pt}\nx\n", "here-document's delimiter", "fixed delimiter"),
    ],
)
def test_a_reference_where_no_expansion_gives_the_value_is_refused(
    text: str, says: str, hint: str
) -> None:
    with pytest.raises(ParamError) as caught:
        compile_command(text, compile_parameters(SHELL_PARAMS))
    assert caught.value.message.startswith("${pt} stands ")
    assert says in caught.value.message
    assert hint in (caught.value.hint or "")


# --- environment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pt", "BACKFILL_PARAM_PT"),
        ("full_refresh", "BACKFILL_PARAM_FULL_REFRESH"),
        ("a-b.c d", "BACKFILL_PARAM_A_B_C_D"),
        ("Pt2", "BACKFILL_PARAM_PT2"),
        ("é", "BACKFILL_PARAM__"),
    ],
)
def test_env_name(name: str, expected: str) -> None:
    assert env_name(name) == expected


def test_environment() -> None:
    params = compile_parameters([("pt", "${yyyymmdd-1}"), ("hour", "$[hh24]"), ("t", "$taskid")])
    assert environment(params, CTX) == {
        "BACKFILL_BIZDATE": "20240301",
        "BACKFILL_CYCTIME": "20240302020000",
        "BACKFILL_TASKID": "t-42",
        "BACKFILL_NODE": "dwd_orders",
        "BACKFILL_NAME": "fix-orders",
        "BACKFILL_PARAM_PT": "20240229",
        "BACKFILL_PARAM_HOUR": "02",
        "BACKFILL_PARAM_T": "t-42",
    }
    assert environment({}, CTX, {}) == {
        "BACKFILL_BIZDATE": "20240301",
        "BACKFILL_CYCTIME": "20240302020000",
        "BACKFILL_TASKID": "t-42",
        "BACKFILL_NODE": "dwd_orders",
        "BACKFILL_NAME": "fix-orders",
    }


# --- caching ----------------------------------------------------------------------------


def test_time_expressions_are_memoized_per_date() -> None:
    cache: dict[object, str] = {}
    template = compile_template("${yyyymmdd}")
    assert template.render(CTX, cache) == "20240301"
    assert len(cache) == 1
    # The same expression elsewhere (and $bizdate, its alias) shares the entry.
    assert compile_template("$bizdate").render(CTX, cache) == "20240301"
    assert len(cache) == 1
    # A different business date is a different entry, even at the same scheduled time.
    assert template.render(Context(date(2024, 3, 2), CTX.cyctime), cache) == "20240302"
    assert len(cache) == 2
    # The entry is what gets rendered: prove it is used rather than recomputed.
    for key in cache:
        cache[key] = "memoized"
    assert template.render(CTX, cache) == "memoized"
    assert template.render(CTX) == "20240301"  # without a cache nothing is memoized


def test_scheduled_time_is_keyed_by_cyctime() -> None:
    cache: dict[object, str] = {}
    template = compile_template("$[hh24mi]")
    assert template.render(at(date(2024, 3, 1), datetime(2024, 3, 2, 2, 0)), cache) == "0200"
    assert template.render(at(date(2024, 3, 1), datetime(2024, 3, 2, 3, 0)), cache) == "0300"


def test_per_instance_values_are_not_cached() -> None:
    cache: dict[object, str] = {}
    template = compile_template("$taskid $nodeid $jobid $gmtdate $bizdate")
    one = Context(CTX.bizdate, CTX.cyctime, taskid="1", nodeid="a", jobid="x")
    two = Context(
        CTX.bizdate, CTX.cyctime, taskid="2", nodeid="b", jobid="y", gmtdate=date(2024, 4, 5)
    )
    assert template.render(one, cache) == "1 a x $gmtdate 20240301"
    assert template.render(two, cache) == "2 b y 20240405 20240301"


def test_context_is_frozen() -> None:
    with pytest.raises(AttributeError):
        CTX.taskid = "x"  # type: ignore[misc]
