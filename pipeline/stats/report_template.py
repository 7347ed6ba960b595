# ruff: noqa: E501  (HTML template lines)
"""Jinja template of the statistics report (kept in the package as a string: one file, no network)."""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ spec.trial }} trial statistics</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1340px; color: #222; line-height: 1.35; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
h3 { font-size: 1.02em; margin-bottom: 0.3em; }
table { border-collapse: collapse; font-size: 0.84em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: middle; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.confirmatory td { background: #fff8dc; font-weight: 600; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 3px; font-size: 0.78em; font-weight: 700; }
.conf { background: #b8860b; color: white; } .unblinded { background: #a33; color: white; }
.excluded { color: #a33; } .fav-treatment { color: #1f7a3a; font-weight: 600; } .fav-control { color: #b03a2e; font-weight: 600; }
.box { border: 2px solid #b8860b; background: #fffaf0; padding: 0.6em 1em; border-radius: 4px; }
.axis { font-size: 0.75em; color: #555; white-space: nowrap; }
.small { font-size: 0.85em; color: #444; }
img { max-width: 100%; }
table.wide { font-size: 0.78em; } table.wide svg { width: 140px; height: 16px; }
code { background: #f6f6f6; padding: 1px 4px; }
</style>
</head>
<body>
<h1>{{ spec.trial }}: statistical analysis <span class="badge unblinded">UNBLINDED</span></h1>
<p class="small">{{ spec.title }}<br>
Trial spec <code>{{ spec.source }}</code>; resstore-pipeline {{ version }}; {{ n_results }} result rows in
<code>results.tsv</code> (full precision; numbers here are rounded for reading).
Treated arm <b>{{ spec.treated_arm }}</b>, control arm <b>{{ spec.control_arm }}</b>: every estimate is
{{ spec.treated_arm }} minus {{ spec.control_arm }} (differences) or {{ spec.treated_arm }} / {{ spec.control_arm }} (ratios),
in the outcome's units.</p>
<p class="small">Analysis sets:
{% for s in set_counts %}<b>{{ s.name }}</b> ({{ "every randomised subject" if s.column is none else s.column ~ " = yes" }}:
{{ spec.treated_arm }} {{ s.treated }}, {{ spec.control_arm }} {{ s.control }}){{ "; " if not loop.last }}{% endfor %}.
Visits: {% for v in spec.visits %}{{ v }}{% if spec.visit_labels[v] %} ({{ spec.visit_labels[v] }}){% endif %}{{ ", " if not loop.last }}{% endfor %}.
Inputs: {% for k, v in inputs.items() %}{{ k }} <code>{{ v }}</code>{{ ", " if not loop.last }}{% endfor %}.</p>

<h2 id="confirmatory">Confirmatory endpoint <span class="badge conf">CONFIRMATORY</span></h2>
{% if confirmatory and confirmatory.status == "ok" %}
<div class="box">
<p><b>{{ confirmatory.label }}</b>{% if confirmatory.units %} ({{ confirmatory.units }}){% endif %}; {{ confirmatory.better }} is better.
{{ confirmatory.endpoint_type }} endpoint{% if confirmatory.endpoint_type == "continuous" %} (change from baseline){% endif %} at <b>{{ confirmatory.visit }}</b>, {{ first }} set, model <b>{{ confirmatory.model }}</b>{% if confirmatory.covariance %} ({{ confirmatory.covariance }} covariance){% endif %}.</p>
<table>
<tr><th>{{ spec.treated_arm }}: n; {{ confirmatory.summary_label }}</th><th>{{ spec.control_arm }}: n; {{ confirmatory.summary_label }}</th>
<th>{{ confirmatory.measure }} (95% CI)</th>{% if confirmatory.endpoint_type == "continuous" %}<th>SE</th><th>df ({{ confirmatory.ddf_method }})</th>{% endif %}
<th>p</th><th>favours</th><th class="axis">&larr; control | treatment &rarr;</th></tr>
<tr class="confirmatory"><td class="num">{{ confirmatory.n_treated }}; {{ confirmatory.treated_shown }}</td>
<td class="num">{{ confirmatory.n_control }}; {{ confirmatory.control_shown }}</td>
<td class="num">{{ confirmatory.estimate_ci }} {{ confirmatory.units_shown }}</td>
{% if confirmatory.endpoint_type == "continuous" %}<td class="num">{{ confirmatory.se_shown }}</td><td class="num">{{ confirmatory.df_shown }}</td>{% endif %}
<td class="num">{{ confirmatory.p_shown }}</td>
<td class="fav-{{ confirmatory.favours }}">{{ confirmatory.favours }}</td><td>{{ confirmatory.forest | safe }}</td></tr>
</table>
<p class="small">{% if confirmatory.endpoint_type == "continuous" %}{{ ddf_text }} {{ weights_text }}{% else %}{{ confirmatory.note }}{% endif %}</p>
</div>
{% elif confirmatory %}<p class="excluded">The confirmatory endpoint was not estimated: {{ confirmatory.note }}</p>
{% else %}<p class="excluded">No primary endpoint was analysed (see exclusions).</p>{% endif %}

<h2 id="summary">All endpoints ({{ first }}, main model, key visit)</h2>
<p class="small">Marks: each row on its own scale in the outcome's units (ratios on a log scale), the vertical line is
no effect; <b>right of the line favours treatment</b> (axes are flipped where lower is better). Green: the whole 95% CI
favours treatment; red: the whole CI favours control. q: Benjamini-Hochberg within the endpoint's family.</p>
<table>
<tr><th>endpoint</th><th>{{ spec.treated_arm }}</th><th>{{ spec.control_arm }}</th><th>effect (95% CI)</th>
<th class="axis">&larr; favours control | favours treatment &rarr;</th><th>favours</th><th>p</th><th>q</th></tr>
{% for r in summary %}
<tr{% if r.confirmatory == "yes" %} class="confirmatory"{% endif %}>
<td>{% if r.confirmatory == "yes" %}<span class="badge conf">CONFIRMATORY</span> {% endif %}{{ r.label }}<br>
<span class="small">{{ r.role }} &middot; {{ r.endpoint_type }} &middot; {{ r.model }} &middot; {{ r.visit }}{% if r.family %} &middot; family {{ r.family }}{% endif %}</span></td>
{% if r.status == "ok" %}
<td class="num">{{ r.treated_shown }}</td><td class="num">{{ r.control_shown }}</td>
<td class="num">{{ r.estimate_ci }} {{ r.units_shown }}<br><span class="small">{{ r.measure }}</span></td><td>{{ r.forest | safe }}</td>
<td class="fav-{{ r.favours }}">{{ r.favours }}</td><td class="num">{{ r.p_shown }}</td><td class="num">{{ r.q_shown }}</td>
{% else %}<td colspan="7" class="excluded">not estimated: {{ r.note }}</td>{% endif %}
</tr>
{% endfor %}
</table>
<p class="small">Treated / control columns: LS mean change (SE) for mixed models, % with the event (binary), median
category (ordinal), events per 100 days (counts), % with the event (time to event).</p>

<h3>Analysis sets side by side (main model, key visit)</h3>
<table><tr><th>endpoint</th><th>visit</th><th>measure</th>{% for s in spec.analysis_sets %}<th>{{ s }}</th>{% endfor %}</tr>
{% for r in sets_table %}<tr><td>{{ r.label }}</td><td>{{ r.visit }}</td><td>{{ r.measure }}</td>
{% for c in r.cells %}<td class="num">{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>

{% if continuous %}
<h2 id="continuous">Continuous endpoints: change from baseline ({{ first }})</h2>
<p class="small">Model: change ~ baseline + visit + arm + arm:visit + {{ spec.covariates | join(" + ") }}, patient as the
repeated unit; unstructured covariance by REML (fallback heterogeneous Toeplitz, then compound symmetry); ANCOVA with one
post-baseline visit. {{ ddf_text }} {{ weights_text }}</p>
<table>
<tr><th>endpoint</th><th>visit</th><th>n {{ spec.treated_arm }} / {{ spec.control_arm }}</th><th>LS mean {{ spec.treated_arm }} (SE)</th>
<th>LS mean {{ spec.control_arm }} (SE)</th><th>difference (95% CI)</th><th>units</th><th>SE</th><th>df</th><th>df other</th><th>p</th>
<th class="axis">&larr; control | treatment &rarr;</th><th>favours</th></tr>
{% for r in continuous %}
<tr{% if r.confirmatory == "yes" %} class="confirmatory"{% endif %}><td>{% if loop.first or continuous[loop.index0 - 1].outcome != r.outcome %}{{ r.label }}{% endif %}</td><td>{{ r.visit }}</td>
<td class="num">{{ r.n_treated }} / {{ r.n_control }}</td>
{% if r.status == "ok" %}<td class="num">{{ r.lsm_t }}</td><td class="num">{{ r.lsm_c }}</td><td class="num">{{ r.estimate_ci }}</td>
<td>{{ r.units }}</td><td class="num">{{ r.se_shown }}</td><td class="num">{{ r.df_shown }}</td><td class="num">{{ r.df_other_shown }}</td>
<td class="num">{{ r.p_shown }}</td><td>{{ r.forest | safe }}</td><td class="fav-{{ r.favours }}">{{ r.favours }}</td>
{% else %}<td colspan="10" class="excluded">not estimated: {{ r.note }}</td>{% endif %}</tr>
{% endfor %}
</table>
{% if figures.mean_change %}<img alt="mean change by arm and visit" src="{{ figures.mean_change }}">{% endif %}
{% endif %}

{% if mcid %}
<h2 id="mcid">Minimum clinically important difference</h2>
<table><tr><th>endpoint</th><th>visit</th><th>MCID</th><th>mean change {{ spec.treated_arm }} (95% CI)</th>
<th>mean change {{ spec.control_arm }} (95% CI)</th><th>reaching the MCID: {{ spec.treated_arm }}</th><th>{{ spec.control_arm }}</th>
<th>difference, percentage points (95% CI)</th><th>p</th><th>source of the MCID</th></tr>
{% for m in mcid %}<tr><td>{{ m.label }}</td><td>{{ m.visit }}</td><td class="num">{{ m.mcid }}</td><td class="num">{{ m.treated }}</td>
<td class="num">{{ m.control }}</td><td class="num">{{ m.row.treated_shown }}</td><td class="num">{{ m.row.control_shown }}</td>
<td class="num">{{ m.row.estimate_ci }}</td><td class="num">{{ m.row.p_shown }}</td><td class="small">{{ m.reference }}</td></tr>{% endfor %}
</table>
{% endif %}

{% macro generic(section, title, anchor, text) %}
{% if section.rows %}
<h2 id="{{ anchor }}">{{ title }} ({{ first }})</h2>
<p class="small">{{ text }} Each cell: estimate (95% CI) and p; the mark and "favours" are the endpoint's main model
(risk differences in percentage points, pp).</p>
<table class="wide"><tr><th>endpoint</th><th>visit</th><th>n {{ spec.treated_arm }} / {{ spec.control_arm }}</th>
<th>{{ spec.treated_arm }}</th><th>{{ spec.control_arm }}</th>
{% for m in section.models %}<th>{{ m }}</th>{% endfor %}
<th class="axis">&larr; control | treatment &rarr;</th><th>favours</th></tr>
{% for r in section.rows %}<tr{% if r.confirmatory == "yes" %} class="confirmatory"{% endif %}>
<td>{% if r.first %}{{ r.label }}{% endif %}</td><td>{{ r.visit }}</td>
<td class="num">{{ r.n_treated }} / {{ r.n_control }}</td>
<td class="num">{{ r.treated_shown }}</td><td class="num">{{ r.control_shown }}</td>
{% for c in r.cells %}<td class="num{% if c.status != 'ok' %} excluded{% endif %}">{{ c.text }}{% if c.p %}<br><span class="small">p = {{ c.p }}</span>{% endif %}</td>{% endfor %}
<td>{{ r.forest | safe }}</td><td class="fav-{{ r.favours }}">{{ r.favours }}</td></tr>{% endfor %}
</table>
{% if section.notes %}<ul class="small">{% for n in section.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
{% endif %}
{% endmacro %}
{{ generic(binary, "Binary endpoints", "binary", "Risk difference (Newcombe CI; p chi-squared, or Fisher when an expected count is below 5), Fisher exact (conditional MLE odds ratio), Pearson chi-squared, logistic regression adjusted for " ~ (spec.strata | join(", ")) ~ ", Cochran-Mantel-Haenszel stratified by " ~ (spec.cmh_stratum or "nothing") ~ ".") }}
{{ generic(ordinal, "Ordinal endpoints: shift analysis", "ordinal", "Proportional-odds logistic regression (common odds ratio of a higher category, adjusted for " ~ (spec.strata | join(", ")) ~ ") and the CMH row-mean-scores test stratified by " ~ (spec.cmh_stratum or "nothing") ~ ".") }}
{% for g in figures.grotta %}<img alt="ordinal shift" src="{{ g }}">{% endfor %}
{{ generic(counts, "Counts with exposure", "counts", "Rate ratio from Poisson and negative binomial (NB2) regressions with offset log(exposure), adjusted for " ~ (spec.strata | join(", ")) ~ ".") }}
{{ generic(tte, "Time to event", "tte", "Hazard ratio from a Cox model (Efron ties) stratified by " ~ (spec.strata | join(", ")) ~ "; stratified log-rank test; Kaplan-Meier curves below.") }}
{% for k in figures.km %}<img alt="Kaplan-Meier curves" src="{{ k }}">{% endfor %}

{% if biomarkers %}
<h2 id="biomarkers">Biomarkers at {{ spec.primary_visit }} (FDR family)</h2>
<p class="small">{{ spec.families.get("biomarkers", "") }}. q: Benjamini-Hochberg across this family, within analysis set
and model.</p>
<table><tr><th>biomarker</th><th>units</th><th>better</th><th>n</th><th>LS mean {{ spec.treated_arm }} (SE)</th><th>LS mean {{ spec.control_arm }} (SE)</th>
<th>difference (95% CI)</th><th class="axis">&larr; control | treatment &rarr;</th><th>favours</th><th>p</th><th>q</th></tr>
{% for r in biomarkers %}<tr><td>{{ r.label }}</td><td>{{ r.units }}</td><td>{{ r.better }}</td><td class="num">{{ r.n_treated }} / {{ r.n_control }}</td>
{% if r.status == "ok" %}<td class="num">{{ r.lsm_t }}</td><td class="num">{{ r.lsm_c }}</td><td class="num">{{ r.estimate_ci }}</td>
<td>{{ r.forest | safe }}</td><td class="fav-{{ r.favours }}">{{ r.favours }}</td><td class="num">{{ r.p_shown }}</td><td class="num">{{ r.q_shown }}</td>
{% else %}<td colspan="7" class="excluded">not estimated: {{ r.note }}</td>{% endif %}</tr>{% endfor %}
</table>
{% endif %}

{% if lesion_sources %}
<h2 id="lesion-sources">Lesion masks by source</h2>
<p class="small">Sessions of the feature table by <code>lesion_source</code>, the mask every lesion feature (volume, side,
CST load) rests on: <b>automatic</b> segmentation; <b>reviewed</b>: edited and saved by a QC reviewer on the review page
(<code>lesion.reviewed_dir</code>; rater in <code>lesion_reviewed_by</code>); <b>manual</b>: a <code>label-lesion_roi</code> mask;
<b>none</b>: no FLAIR and no manual mask{% if "n/a" in lesion_sources.columns %}; <b>n/a</b>: the lesion step did not run or failed{% endif %}.</p>
<table id="lesion-source-counts"><tr><th>visit</th>{% for c in lesion_sources.columns %}<th>{{ c }}</th>{% endfor %}<th>total</th></tr>
{% for r in lesion_sources.rows + [lesion_sources.total] %}<tr><td>{{ r.visit }}</td>{% for n in r.counts %}<td class="num">{{ n }}</td>{% endfor %}<td class="num">{{ r.total }}</td></tr>
{% endfor %}
</table>
{% endif %}

{% if safety %}
<h2 id="safety">Adverse events by arm (all patients with follow-up)</h2>
<table><tr>{% for k in safety[0].keys() %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in safety %}<tr>{% for v in r.values() %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for n in safety_notes %}<p class="small">{{ n }}</p>{% endfor %}
{% endif %}

<h2 id="diagnostics">Model diagnostics</h2>
{% if figures.diagnostics %}<img alt="residual diagnostics of the primary endpoint" src="{{ figures.diagnostics }}">{% endif %}
{% if figures.sigma %}
<p class="small">Estimated within-subject covariance of the primary endpoint's change ({{ first }}):</p>
<table><tr><th></th>{% for v in figures.sigma_visits %}<th>{{ v }}</th>{% endfor %}</tr>
{% for row in figures.sigma %}<tr><th>{{ row[0] }}</th>{% for x in row[1:] %}<td class="num">{{ x }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}
<table><tr><th>outcome</th><th>set</th><th>model</th><th>covariance used</th><th>converged</th><th>subjects</th><th>observations</th>
<th>REML log-lik</th><th>AIC</th><th>fallback</th></tr>
{% for d in diagnostics %}<tr><td>{{ d.outcome }}</td><td>{{ d.analysis_set }}</td><td>{{ d.model }}</td><td>{{ d.covariance }}</td>
<td{% if not d.converged %} class="excluded"{% endif %}>{{ d.converged }}</td><td class="num">{{ d.n_subjects }}</td><td class="num">{{ d.n_obs }}</td>
<td class="num">{{ d.loglik }}</td><td class="num">{{ d.aic }}</td><td>{{ d.fallback }}</td></tr>{% endfor %}
</table>

<h2 id="exclusions">Exclusions and warnings</h2>
<p class="small">{{ exclusions | length }} line(s) (also in <code>exclusions.tsv</code>); {{ n_excluded_rows }} result row(s)
not estimated (status excluded in results.tsv).</p>
{% for n in notes %}<p class="small">{{ n }}</p>{% endfor %}
{% if exclusions %}
<table><tr><th>scope</th><th>participant</th><th>session</th><th>outcome</th><th>set</th><th>reason</th></tr>
{% for e in exclusions %}<tr><td>{{ e.scope }}</td><td>{{ e.participant_id }}</td><td>{{ e.session }}</td><td>{{ e.outcome }}</td>
<td>{{ e.analysis_set }}</td><td>{{ e.reason }}</td></tr>{% endfor %}
</table>
{% else %}<p>Nothing was excluded.</p>{% endif %}
</body>
</html>
"""

DSMB_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ trial }} DSMB safety (blinded)</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { border: 1px solid #ddd; padding: 3px 8px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { background: #1f5fa8; color: white; padding: 1px 6px; border-radius: 3px; font-size: 0.8em; }
</style></head>
<body>
<h1>{{ trial }}: safety tables for the DSMB <span class="badge">BLINDED: groups A / B</span></h1>
<p>Groups are the codes of the coded allocation key (<code>{{ groups_file }}</code>); the arm labels were not read.
Looks after {{ looks | join(", ") }} patients completed {{ days }} days, in inclusion order
(<code>{{ order_by }}</code>). Adverse events counted from day 0 (treatment) to the end of each window.
resstore-pipeline {{ version }}.</p>
{% for n in notes %}<p><b>{{ n }}</b></p>{% endfor %}
{% for look, rows in by_look %}
<h2>{{ look }}</h2>
<table><tr>{% for k in rows[0].keys() if k != "look" %}<th>{{ k }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for k, v in r.items() if k != "look" %}<td{% if "(n=" in k %} class="num"{% endif %}>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endfor %}
</body></html>
"""
