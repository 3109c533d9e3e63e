"""`pipeline.py cluster up|down|status`: the local single-node Kubernetes (imagepipe.cluster.local), in
<state>/cluster, for trying the CI half by hand (`--kube-context` with the context it prints)."""

from __future__ import annotations

from imagepipe.cluster.facts import Facts
from imagepipe.cluster.local import LocalCluster
from imagepipe.errors import UsageError
from imagepipe.exec import exitcodes
from imagepipe.pipeline.context import Context
from imagepipe.ui import output


def run(ctx: Context) -> int:
    action = (ctx.args.target or ["status"])[0]
    cluster = LocalCluster(ctx.state_dir / "cluster")
    if action == "up":
        f = cluster.up()
        output.block(f"cluster {f.context} up (node Ready in {f.ready_seconds} s)\n"
                     f"    export KUBECONFIG={f.kubeconfig}\n"
                     f"    registry {f.registry} (plain HTTP; pods and this host reach it), git {f.git_url}\n"
                     f"    python build/pipeline.py --kube-context {f.context} --registry {f.registry} ...")
    elif action == "down":
        output.block("cluster stopped and removed" if cluster.down() else "no cluster in this state directory")
    elif action == "status":
        found = Facts.load(cluster.dir)
        output.block(f"cluster {found.context}: kubeconfig {found.kubeconfig}, registry {found.registry}" if found
                     else "no cluster")
    else:
        raise UsageError(f"unknown cluster action {action!r}: use up, down or status")
    return exitcodes.OK
