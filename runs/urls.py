from django.urls import path

from runs.views import (
    agent,
    approvals,
    control,
    findings,
    launch,
    reports,
    runs,
    scorecard,
    tokens,
    tree,
    webhooks,
)

app_name = "runs"

urlpatterns = [
    path("", runs.run_list, name="list"),
    path("runs/new/", launch.launch, name="launch"),
    path("runs/new/estimate/", launch.estimate, name="estimate"),
    path("runs/<int:run_id>/", runs.run_detail, name="detail"),
    path("runs/<int:run_id>/tree/", tree.tree_children, name="tree"),
    path("runs/<int:run_id>/tree/search/", tree.tree_search, name="tree_search"),
    path("runs/<int:run_id>/events/", runs.events, name="events"),
    path("runs/<int:run_id>/findings/", findings.findings, name="findings"),
    path("runs/<int:run_id>/agents/<int:task_id>/", agent.task_detail, name="task"),
    path("runs/<int:run_id>/cancel/", control.cancel, name="cancel"),
    path("runs/<int:run_id>/retry/", control.retry, name="retry"),
    path("runs/<int:run_id>/extend/", control.extend, name="extend"),
    path("runs/<int:run_id>/decide/", approvals.decide, name="decide"),
    path("runs/<int:run_id>/decide/agents/", approvals.decide_agents, name="decide_agents"),
    path("approvals/", approvals.inbox, name="inbox"),
    path("webhooks/", webhooks.subscriptions, name="webhooks"),
    path("webhooks/<int:subscription_id>/", webhooks.subscription, name="webhook"),
    path("webhooks/<int:subscription_id>/test/", webhooks.send_test, name="webhook_test"),
    path("webhooks/<int:subscription_id>/rotate/", webhooks.rotate, name="webhook_rotate"),
    path("webhooks/<int:subscription_id>/delete/", webhooks.delete, name="webhook_delete"),
    path(
        "webhooks/<int:subscription_id>/deliveries/<int:delivery_id>/resend/",
        webhooks.resend,
        name="webhook_resend",
    ),
    path("settings/tokens/", tokens.tokens, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", tokens.revoke, name="revoke_token"),
    path(
        "runs/<int:run_id>/findings/<int:finding_id>/review/",
        approvals.review,
        name="review_finding",
    ),
    path(
        "runs/<int:run_id>/findings/<int:finding_id>/rerun/",
        approvals.rerun_finding,
        name="rerun_finding",
    ),
    path(
        "runs/<int:run_id>/findings/<int:finding_id>/rerun/estimate/",
        approvals.rerun_estimate,
        name="rerun_estimate",
    ),
    # Report versions: provenance page and exports (issue 11, aggregation half).
    path("runs/<int:run_id>/reports/<int:version>/", reports.report_version, name="report"),
    path("runs/<int:run_id>/reports/new/", reports.reaggregate_report, name="reaggregate"),
    path(
        "runs/<int:run_id>/reports/<int:version>/export.<str:fmt>",
        reports.report_export,
        name="report_export",
    ),
    # An evaluation's scorecard (issue 22).
    path(
        "runs/<int:run_id>/reports/<int:version>/scorecard/",
        scorecard.scorecard,
        name="scorecard",
    ),
    path(
        "runs/<int:run_id>/reports/<int:version>/scorecard/calibrate/",
        scorecard.calibrate,
        name="scorecard_calibrate",
    ),
    path(
        "runs/<int:run_id>/reports/<int:version>/scorecard.csv",
        scorecard.scorecard_csv,
        name="scorecard_csv",
    ),
]
