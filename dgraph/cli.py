"""The `dgraph` command line.

Exit codes: 0 success; 1 an invalid workflow or a failed run (the message says what and where);
2 a bad command line; 130 cancelled (Ctrl-C); 70 an internal error (a bug: rerun with --debug and report it).
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

# The rest is imported where it is used: `dgraph --help` should cost little more than the interpreter.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_CANCELLED = 0, 1, 2, 70, 130


class UsageError(Exception):
    pass


class _PrintableStream:
    """Standard output with control characters escaped: names and text in it can come from a hostile file."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from .printable import printable

        self._stream.write(printable(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Unused:
    """Takes the arguments of a subcommand this command line does not name: `dgraph --help` lists the
    subcommands by name and help only, and building every argument (with argparse's formatter each time)
    made it cost 1.7x a bare interpreter."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        pass


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand a command line names: its first word that is not an option (the top level's only
    options, --debug and --help, take no value)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The command line's parser; with `command`, only that subcommand gets its arguments ("*": all)."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="dgraph", description="Diffusion models for audio and vision as typed workflow graphs.",
        epilog="exit codes: 0 ok, 1 invalid workflow or failed run, 2 bad command line, 130 cancelled, 70 internal error")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Graph inputs arrive as free --flags: never let argparse read --prompt as an abbreviation of --prompt-file.
    _add_parser = sub.add_parser

    def add_parser(name, *args, **kwargs):
        made = _add_parser(name, *args, allow_abbrev=False, **kwargs)
        if command not in ("*", name):
            return _Unused()
        # --debug also after the command name; SUPPRESS keeps a subcommand from resetting an earlier one.
        made.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        return made

    sub.add_parser = add_parser

    p = sub.add_parser("run", help="run a workflow (a file, hf://owner/repo[/file.yaml][@rev], a diffusers repo)", add_help=False,
                       description="Run a workflow. Any graph input can be given as --NAME VALUE "
                                   "(e.g. --prompt, --seed, --steps); --set also reaches node inputs. "
                                   "`dgraph run WORKFLOW --help` lists the workflow's own inputs.")
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the workflow's inputs) and exit")
    p.add_argument("workflow", nargs="?", help="workflow file, hf://owner/repo/path.yaml@revision, hf://owner/repo")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a graph input (steps=20) or a node input (unet.source=./my-unet); repeatable")
    p.add_argument("--checkpoint", metavar="FILE.safetensors",
                   help="load the UNet, VAE and text encoders from one single-file Stable Diffusion checkpoint "
                        "(every loader of a unet, vae, text_encoder or text_encoder_2 folder; --set still wins)")
    p.add_argument("--device", help="default device for nodes without their own `device:` (cpu, cuda, cuda:1, mps)")
    p.add_argument("--force-device", action="store_true", help="place every node on --device, whatever the file says")
    p.add_argument("--output-dir", "-o", default="outputs", help="folder for written files (default: outputs)")
    p.add_argument("--output", action="append", dest="outputs", metavar="NAME",
                   help="compute only this graph output (repeatable); default: all")
    p.add_argument("--prompt-file", metavar="TXT", help="prompts, one a line, run as one batch (sets the graph input prompt; with "
                        "--pipeline, one item each)")
    p.add_argument("--from-image", metavar="PNG", help="rerun the workflow and inputs embedded in a PNG dgraph wrote")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files of earlier runs (default: new files take the next free number)")
    p.add_argument("--locked", action="store_true",
                   help="refuse to run when the workflow differs from its lock file (sources, commits, node versions)")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="CPU threads for torch (default: half the usable cores, at least 1; OMP_NUM_THREADS "
                        "if it is set)")
    p.add_argument("--compile", choices=["default", "reduce-overhead", "max-autotune"], metavar="MODE",
                   help="run the denoiser networks through torch.compile: default, reduce-overhead (with CUDA "
                        "graphs) or max-autotune; the first sampling step compiles")
    _executor_flags(p)
    p.add_argument("--executor", choices=["local", "parallel", "ray"],
                   help="local: one node at a time (the default); parallel: ready nodes at once "
                        "(implied by --devices, --pipeline and --offload); ray: on a Ray cluster, models kept in "
                        "its workers, the prompts of --prompt-file spread over them (implied by --ray-address)")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster to run on (auto, ray://HOST:10001); default: the instance running on "
                        "this machine, else one started for this run")
    p.add_argument("--ray-workers", type=_positive_int, metavar="N",
                   help="replicas of each model worker that prompts spread over (default: the cluster's GPUs, "
                        "else 1)")
    p.add_argument("--pipeline", action="store_true",
                   help="run each prompt of --prompt-file as its own item, item k+1's first stages beside item "
                        "k's later ones (default: all prompts as one batch)")

    p = sub.add_parser("plan", help="print where each node would run, memory per device and the critical path",
                       description="Place a workflow's nodes over --devices by the size of their weights, read "
                                   "from safetensors headers (no weight is loaded). Capacities can be given by hand "
                                   "(cuda:0:24GiB), so a machine you do not have can be planned for.")
    p.add_argument("workflow", help="workflow file, hf://owner/repo/path.yaml@revision")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                   help="override a node input first (unet.dtype=float16); repeatable")
    p.add_argument("--checkpoint", metavar="FILE.safetensors",
                   help="read the UNet, VAE and text encoders from one single-file checkpoint (as `run` does)")
    p.add_argument("--output", action="append", dest="outputs", metavar="NAME",
                   help="plan only for this graph output (repeatable); default: all")
    _executor_flags(p, required=True)

    p = sub.add_parser("push", help="publish a workflow, its files, a model card and its lock to a Hub repo",
                       description="Upload in one commit the workflow, every local file it names (all inside its "
                                   "folder), a README.md model card and its lock file. Token, endpoint and login "
                                   "as huggingface_hub has them (HF_TOKEN or `hf auth login`, HF_ENDPOINT).")
    p.add_argument("workflow")
    p.add_argument("repo", help="owner/name (created if missing)")
    p.add_argument("--dry-run", action="store_true", help="list the files and sizes that would be uploaded; upload nothing")
    p.add_argument("--private", action="store_true", default=None, help="create the repo private")
    p.add_argument("--revision", help="branch to commit to (created if missing; default main)")
    p.add_argument("--message", "-m", help="commit message")

    p = sub.add_parser("lock", help="pin every hf:// source of a workflow to a commit (writes NAME.lock.json beside it)",
                       description="Resolve each hf:// source to a commit and record the files it reads, the node "
                                   "types with their versions and packs, and the dgraph version. `dgraph run` uses "
                                   "the lock beside a workflow by itself; --locked makes drift an error.")
    p.add_argument("workflow")
    p.add_argument("--check", action="store_true", help="report differences from the existing lock; write nothing "
                                                       "(exit 1 on drift)")

    p = sub.add_parser("pull", help="download exactly the files a workflow reads, at its locked commits",
                       description="Fetch each source's files (the chosen variant, its folder only) into the "
                                   "huggingface_hub cache, total size first; continues where an interrupted pull "
                                   "stopped; afterwards the workflow runs with HF_HUB_OFFLINE=1.")
    p.add_argument("workflow", help="workflow file or hf://owner/repo[@revision]")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("export", help="write the workflow of a diffusers pipeline folder or repo",
                       description="Read model_index.json of a diffusers pipeline (folder, repo id or hf://repo@rev) "
                                   "and write the equivalent workflow file. Several stage pipelines (e.g. DeepFloyd IF "
                                   "stage I then stage II) are joined into one cascade with a shared text encoding.")
    p.add_argument("pipeline", nargs="+", help="a folder, owner/repo or hf://owner/repo@revision (several: a cascade)")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.add_argument("--pipeline-class", help="build this pipeline class instead (e.g. DDIMPipeline over a DDPM repo)")

    p = sub.add_parser("convert", help="convert an official checkpoint (vocoders, GLIDE) into safetensors + config.json",
                       description="Read an officially released checkpoint (the only place dgraph reads a pickle, with "
                                   "torch.load(weights_only=True)) and write a folder that from_pretrained and "
                                   "load.vocoder / load.glide read.")
    p.add_argument("family", choices=["fastdiff", "diffwave", "hifigan", "glide"])
    p.add_argument("checkpoint", help="the official checkpoint file")
    p.add_argument("--output", "-o", required=True, help="folder to write")
    p.add_argument("--config", help="HiFi-GAN: the release's config.json (default: guessed from the tensor shapes)")
    p.add_argument("--preset", choices=["v1", "v2", "v3", "base", "upsample", "base-inpaint", "upsample-inpaint",
                                        "clip-image", "clip-text"],
                   help="HiFi-GAN: the generator configuration (v1-v3); GLIDE: the released model (default: from the "
                        "release's file name, base.pt -> base, ...)")
    p.add_argument("--options", help="GLIDE: a JSON file of create_model_and_diffusion options (or of the CLIP "
                                     "encoder's), for checkpoints other than the released ones")

    p = sub.add_parser("validate", help="check workflow files; prints every problem with file:line:column")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="print problems as JSON")

    p = sub.add_parser("nodes", help="list installed node types, their ports and parameters")
    p.add_argument("names", nargs="*", help="show only these node types")
    p.add_argument("--json", action="store_true")
    p.add_argument("--manifest", metavar="PACK", help="print the node manifest of installed pack PACK (what "
                   "validation reads instead of importing it; ship it as PACKAGE/manifest.json)")
    p.add_argument("--output", "-o", help="with --manifest: write to this file instead of stdout")

    p = sub.add_parser("schema", help="print the JSON Schema of workflow files (for editors)")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")

    p = sub.add_parser("train", help="run a training recipe (YAML); resumes from its checkpoints",
                       description="Train an autoencoder or a denoiser from a recipe file and save it with "
                                   "save_pretrained. Ctrl-C checkpoints the current step; run again to resume.")
    p.add_argument("recipe", help="recipe file, e.g. workflows/train/digits_vae.yaml")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")

    p = sub.add_parser("viz", help="draw a workflow as SVG (or Mermaid text)")
    p.add_argument("workflow")
    p.add_argument("--output", "-o", help="file to write: .svg for a picture, .mmd/.md for Mermaid; default: Mermaid to stdout")
    return parser


def _executor_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--devices", required=required, metavar="LIST",
                   help="devices to place nodes without `device:` over, by memory: cuda:0,cuda:1 "
                        "or with capacities cuda:0:24GiB,cuda:1:24GiB")
    p.add_argument("--offload", action="store_true",
                   help="a model that fits no device keeps its weights on the CPU and moves them to the device "
                        "for each use (slower, smaller)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least 1")
    return value


def cpu_threads(requested: int | None) -> int | None:
    """The torch thread count for a run: `--threads`, else OMP_NUM_THREADS's (None: leave torch's), else half
    the cores this process may use, at least 1.

    torch's own default (every core) spins its threads at every operation's barrier; on a machine whose
    cores are shared, a 1.2 M-parameter UNet then samples in 8-16 s instead of 0.2 s (measured on 2 busy
    cores); half the cores keeps most of the speed of large convolutions on an idle machine.
    """
    import os

    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, usable // 2)


def _scalar(text: str) -> Any:
    """A --set value: YAML scalars and flow collections ([1, 2], true, 3.5), read as workflow files are; else the text."""
    from .safe_yaml import ParseError, parse_text

    try:
        return parse_text(text)[0]
    except ParseError:
        return text


def _input_flags(extra: list[str]) -> dict[str, str | list[str]]:
    """`--name value` / `--name=value` pairs left over by argparse become graph inputs; several values
    after one flag (`--class-labels "tiger shark" goldfish`) become a list (a batch of texts)."""
    values: dict[str, str | list[str]] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}")
        name, eq, value = token[2:].partition("=")
        i += 1
        if not eq:
            given = []
            while i < len(extra) and not extra[i].startswith("--"):
                given.append(extra[i])
                i += 1
            if not given:
                raise UsageError(f"--{name} needs a value")
            value = given[0] if len(given) == 1 else given
        values[name.replace("-", "_")] = value
    return values


# ---------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, extra: list[str], parser: argparse.ArgumentParser) -> int:
    import signal
    import time

    from .node import CancelToken
    from .progress import ProgressPrinter

    if args.help:
        parser.print_help()
        if args.workflow or args.from_image:
            print("\n" + _inputs_help(_graph_from_image(args.from_image)[0] if args.from_image else _load_graph(args.workflow)))
        return EXIT_OK
    flags = _input_flags(extra)
    inputs: dict[str, Any] = dict(flags)
    if args.device is not None:
        import torch

        try:
            torch.device(args.device)
        except (RuntimeError, TypeError):
            raise UsageError(f"--device {args.device!r} is not a device; write cpu, cuda, cuda:1 or mps") from None
    if args.from_image:
        graph, embedded = _graph_from_image(args.from_image)
        inputs = {**embedded, **inputs}
    else:
        if not args.workflow:
            raise UsageError("give a workflow file (or --from-image PNG)")
        graph = _load_graph(args.workflow)
        from .sharing.repo import use_lock

        for note in use_lock(graph, args.workflow, locked=args.locked):
            print(f"note: {note}", file=sys.stderr)
    _check_flags(graph, list(flags), parser)
    if args.prompt_file:
        inputs["prompt"] = _read_prompts(args.prompt_file)
    if args.compile:
        graph.compile(args.compile)  # before --set, so a node's own --set still wins
    if args.checkpoint:
        graph.use_checkpoint(args.checkpoint)
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--set {item!r}: write KEY=VALUE")
        if "." in key:
            graph.set(key, _scalar(value))
        else:
            inputs[key] = value
    graph.check()
    bound = graph.bind_inputs(inputs)  # every value checked before any weight loads
    threads = cpu_threads(args.threads)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    cancel = CancelToken()

    def on_sigint(signum, frame):  # first Ctrl-C: stop at the next step; second: stop now
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\ncancelling at the next step (Ctrl-C again to abort now)", file=sys.stderr)

    executor = _executor(args)
    several = isinstance(bound.get("prompt"), list) and len(bound["prompt"]) > 1
    if args.pipeline and not several:
        raise UsageError("--pipeline runs a list of items: give several prompts with --prompt-file")
    as_items = args.pipeline or (several and getattr(executor, "spreads_items", False))  # one item a prompt
    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.perf_counter()
    options = dict(device=args.device, force_device=args.force_device, cancel=cancel, output_dir=args.output_dir,
                   overwrite=args.overwrite)
    try:
        with ProgressPrinter(enabled=not args.quiet) as progress:
            if as_items:
                items = [{"prompt": prompt} for prompt in bound.pop("prompt")]
                results = graph.execute_items(items, args.outputs, executor=executor, on_event=progress,
                                              pipeline=args.pipeline, **options, **bound)
            else:
                results = [graph.execute(args.outputs, executor=executor, on_event=progress, **options, **bound)]
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"seed: {results[0].seed}")
    for index, result in enumerate(results):
        where = f"item {index} " if as_items else ""
        for name, value in result.items():
            print(f"{where}{name}: {_describe(value)}")
    if not args.quiet:
        print(f"done in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return EXIT_OK


def _executor(args: argparse.Namespace):
    """The executor `run`'s flags ask for (None: the graph's default, local)."""
    from .engine.parallel import make_executor

    name = args.executor or ("ray" if args.ray_address else None) or \
        ("parallel" if args.devices or args.pipeline or args.offload else None)
    if name != "ray" and (args.ray_address or args.ray_workers):
        used = [flag for flag, on in (("--ray-address", args.ray_address), ("--ray-workers", args.ray_workers)) if on]
        raise UsageError(f"{', '.join(used)} need --executor ray")
    if name is None:
        return None
    if name == "ray":
        if args.devices or args.offload:
            used = [flag for flag, on in (("--devices", args.devices), ("--offload", args.offload)) if on]
            raise UsageError(f"{', '.join(used)} place nodes over this machine's devices: use --executor parallel "
                             "(on Ray each model worker holds its own GPU; --ray-workers sets how many)")
        return make_executor("ray", address=args.ray_address, workers=args.ray_workers)
    if name == "local" and (args.devices or args.pipeline or args.offload):
        used = [flag for flag, on in (("--devices", args.devices), ("--pipeline", args.pipeline),
                                      ("--offload", args.offload)) if on]
        raise UsageError(f"{', '.join(used)} need --executor parallel")
    if name == "local":
        return make_executor("local")
    devices = args.devices.split(",") if args.devices else None
    return make_executor("parallel", devices=devices, offload=args.offload, cpu_threads=_parallel_threads(args.threads))


def _parallel_threads(requested: int | None) -> int | None:
    """The CPU threads the parallel executor shares between CPU nodes running together: `--threads`, else
    every usable core (each node then runs on fewer threads than one node alone would, which is what keeps
    a busy machine fast; see cpu_threads)."""
    import os

    if requested is not None or os.environ.get("OMP_NUM_THREADS"):
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cmd_plan(args: argparse.Namespace) -> int:
    from .engine.placement import describe, place

    graph = _load_graph(args.workflow)
    if args.checkpoint:
        graph.use_checkpoint(args.checkpoint)
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq or "." not in key:
            raise UsageError(f"--set {item!r}: write NODE.INPUT=VALUE")
        graph.set(key, _scalar(value))
    plan = graph.plan(args.outputs)
    placement = place(graph.resolved, plan, args.devices, base=graph.base, offload=args.offload)
    print(describe(graph.resolved, plan, placement))
    return EXIT_OK


def _check_flags(graph, names: list[str], parser: argparse.ArgumentParser) -> None:
    """A --flag that is neither a graph input nor an option of `run` is a usage error, with the closest names."""
    import difflib

    declared = list(graph.resolved.inputs)
    options = [o.lstrip("-").replace("-", "_") for action in parser._actions for o in action.option_strings
               if o.startswith("--")]
    for name in names:
        if name not in declared:
            close = difflib.get_close_matches(name, declared + options, n=2)
            hint = (f"; did you mean {' or '.join('--' + c.replace('_', '-') for c in close)}?" if close else "")
            raise UsageError(f"unknown flag --{name.replace('_', '-')}{hint} (this workflow's inputs: "
                             f"{', '.join('--' + d.replace('_', '-') for d in declared)}; "
                             "`dgraph run WORKFLOW --help` lists them)")


def _inputs_help(graph) -> str:
    """The workflow's own inputs, as `dgraph run WORKFLOW --help` shows them."""
    from .engine.workflow import IMPLICIT_INPUTS

    declared = graph.to_dict().get("inputs", {})
    lines = [f"inputs of {graph.filename}:"]
    for name, (type_ref, has_default, default) in graph.resolved.inputs.items():
        description = (declared.get(name) or {}).get("description", "")
        if name in IMPLICIT_INPUTS and name not in declared:
            description = "random seed (default: a fresh one, printed and recorded in written files)"
        default_text = f" (default: {default!r})" if has_default and default is not None else \
            ("" if has_default else " (required)")
        lines.append(f"  --{name.replace('_', '-')} {type_ref}{default_text}" + (f"  {description}" if description else ""))
    return "\n".join(lines)


MAX_PROMPT_FILE_BYTES = 16 * 1024 * 1024


def _read_prompts(path: str) -> list[str]:
    from .errors import DgraphError
    from .local_files import read_text_limited

    lines = read_text_limited(path, "--prompt-file", MAX_PROMPT_FILE_BYTES).splitlines()
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise DgraphError(f"--prompt-file {path}: no prompts in it (one prompt a line)")
    return prompts


def _load_graph(source: str):
    """A workflow file, or a diffusers pipeline (folder or repo holding model_index.json)."""
    from pathlib import Path

    from .graph import Graph
    from .hub import parse_source

    if source.startswith("hf://"):
        from .sharing.repo import load_hub_graph

        return load_hub_graph(source)
    name = source
    if not name.lower().endswith((".yaml", ".yml", ".json")):
        parsed = parse_source(source)
        if parsed.kind == "hub" or Path(source, "model_index.json").is_file():
            return Graph.from_pretrained(source)
    return Graph.load(source)


def cmd_push(args: argparse.Namespace) -> int:
    from .sharing.card import human_size
    from .sharing.push import plan_push, push

    if args.dry_run:
        uploads = plan_push(args.workflow, args.repo)
    else:
        uploads, info = push(args.workflow, args.repo, private=args.private, revision=args.revision,
                             message=args.message)
    print(f"{'would upload' if args.dry_run else 'uploaded'} to {args.repo}:")
    for upload in uploads:
        print(f"  {human_size(upload.size):>10}  {upload.path_in_repo}")
    print(f"  {human_size(sum(u.size for u in uploads)):>10}  total, {len(uploads)} files")
    if not args.dry_run:
        print(f"pushed {info.oid} to {args.repo}" + (f"@{args.revision}" if args.revision else "") +
              f": {info.commit_url}")
    return EXIT_OK


def cmd_lock(args: argparse.Namespace) -> int:
    from .errors import DgraphError
    from .graph import Graph
    from .hub import hub_reachable, offline
    from .sharing.lock import drift, lock_path, read_lock, write_lock

    if args.workflow.startswith("hf://"):
        raise DgraphError(f"{args.workflow}: lock a local workflow file (a pushed workflow carries its lock)")
    graph = Graph.load(args.workflow)
    if not args.check:
        print(f"wrote {write_lock(graph, args.workflow)}")
        return EXIT_OK
    path = lock_path(args.workflow)
    if not path.is_file():
        raise DgraphError(f"{args.workflow}: no lock file {path}; write one with `dgraph lock {args.workflow}`")
    resolve = not offline() and hub_reachable()
    if not resolve:
        print("note: the Hub is out of reach: revisions were not asked again, only the workflow was compared")
    changes = drift(graph, read_lock(path), resolve=resolve)
    for change in changes:
        print(f"drift: {change}")
    print(f"{args.workflow}: " + (f"{len(changes)} difference{'s' if len(changes) != 1 else ''} from {path}"
                                  if changes else f"matches {path}"))
    return EXIT_ERROR if changes else EXIT_OK


def cmd_pull(args: argparse.Namespace) -> int:
    from .sharing.card import human_size
    from .sharing.pull import pull

    summary = pull(args.workflow, progress=not args.quiet)
    print(f"{summary['files']} files in the cache ({summary['downloaded']} downloaded, "
          f"{human_size(summary['bytes'])}); run it offline with HF_HUB_OFFLINE=1")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from .configuration import read_json
    from .convert import convert

    options = {}
    if args.family == "glide":
        options = _glide_convert_options(args)
    else:
        if args.options:
            raise UsageError("--options applies to glide checkpoints only")
        if args.config:
            options["config"] = read_json(args.config)
        if args.preset:
            options["preset"] = args.preset
        if options and args.family != "hifigan":
            raise UsageError("--config and --preset apply to hifigan and glide checkpoints only")
    folder = convert(args.family, args.checkpoint, args.output, **options)
    print(f"wrote {folder}")
    return EXIT_OK


def _glide_convert_options(args: argparse.Namespace) -> dict:
    """--preset (default: the one the release's file name says) or --options FILE.json."""
    from .configuration import read_json
    from .convert.glide import PRESETS, RELEASED_FILES

    if args.config:
        raise UsageError("--config applies to hifigan checkpoints; give a GLIDE checkpoint's options with --options")
    if args.preset and args.preset not in PRESETS:
        raise UsageError(f"--preset {args.preset} is not a GLIDE preset; use one of {', '.join(PRESETS)}")
    options: dict = {}
    if args.options:
        values = read_json(args.options)
        if not isinstance(values, dict):
            raise UsageError(f"{args.options}: expected a JSON object of options")
        options["options"] = values
    preset = args.preset or (None if args.options else RELEASED_FILES.get(Path(args.checkpoint).name))
    if preset is None and not args.options:
        raise UsageError(f"{args.checkpoint}: not one of the release's file names ({', '.join(RELEASED_FILES)}); "
                         f"say which model it is with --preset ({', '.join(PRESETS)}) or --options FILE.json")
    if preset is not None:
        options["preset"] = preset
    return options


def cmd_export(args: argparse.Namespace) -> int:
    from .configuration import write_text_atomic
    from .pipelines import export_cascade_text, export_text, read_stage

    stages = [read_stage(pipeline) for pipeline in args.pipeline]
    if len(stages) > 1:
        if args.pipeline_class:
            raise UsageError("--pipeline-class applies to a single pipeline, not to a cascade")
        text = export_cascade_text(stages)
    else:
        class_name, base, components = stages[0]
        text = export_text(args.pipeline_class or class_name, base, components,
                           chosen_class=bool(args.pipeline_class) and args.pipeline_class != class_name)
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _graph_from_image(path: str):
    from .engine.problems import Problem, WorkflowError
    from .errors import DgraphError
    from .graph import Graph
    from .hub import HF_SCHEME, parse_source
    from .local_files import open_image
    from .provenance import BASE_KEY, INPUTS_KEY, WORKFLOW_KEY
    from .safe_yaml import ParseError, parse_text

    try:
        with open_image(path, "--from-image") as picture:
            text = dict(picture.text)  # type: ignore[attr-defined]
    except DgraphError:
        raise
    except (OSError, AttributeError, ValueError, SyntaxError, EOFError) as error:  # PIL's ways to refuse a file
        raise DgraphError(f"{path}: cannot read PNG text metadata: {error}") from None
    if WORKFLOW_KEY not in text:
        raise DgraphError(f"{path}: this PNG carries no dgraph workflow (it was not written by image.save "
                          "with embed_workflow: true)")
    # The embedded JSON is read as any workflow file is: safely, bounded, with positions, duplicate keys refused.
    graph = Graph.from_text(text[WORKFLOW_KEY], f"{path}#workflow")
    base = text.get(BASE_KEY)
    if isinstance(base, str) and base:  # where the workflow's relative sources resolve, recorded at save
        graph.base = parse_source(base) if base.startswith(HF_SCHEME) else base
    graph.check()
    try:
        inputs, _ = parse_text(text.get(INPUTS_KEY, "{}"))
    except ParseError as error:
        raise WorkflowError([Problem("yaml-syntax", error.message, "the PNG's dgraph:inputs is damaged",
                                     f"{path}#inputs", error.line, error.column)]) from None
    if not isinstance(inputs, dict):
        raise DgraphError(f"{path}: its dgraph:inputs is not a mapping of graph inputs; rerun with the "
                          "workflow alone: dgraph run --from-image needs both, or save the workflow and run it")
    return graph, {k: v for k, v in inputs.items() if k in graph.resolved.inputs}


def _describe(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) if value else "(none)"
    waveform = getattr(value, "waveform", None)
    if waveform is not None:
        return f"Audio {tuple(waveform.shape)}, {value.seconds:.2f} s at {value.sample_rate} Hz"
    tensor = getattr(value, "tensor", None) if not isinstance(value, (str, int, float)) else None
    if tensor is not None:
        return f"{type(value).__name__} {tuple(tensor.shape)}"
    return repr(value)


def cmd_validate(args: argparse.Namespace) -> int:
    import json

    from .engine.problems import Problem, WorkflowError
    from .errors import DgraphError
    from .graph import Graph, read_workflow_text

    problems: list[Problem] = []
    for file in args.files:
        try:
            text, filename, base = read_workflow_text(file)
            graph = Graph.from_text(text, filename, base=base)
            problems += graph.problems or graph.source_problems()
        except WorkflowError as error:
            problems += error.problems
        except DgraphError as error:
            problems.append(Problem("unreadable", str(error), file=file))
    if args.json:
        print(json.dumps([p.__dict__ for p in problems], indent=2))
    else:
        for problem in problems:
            print(problem)
        bad = {p.file for p in problems}
        for file in args.files:
            if file not in bad:
                print(f"{file}: ok")
        if problems:
            print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {len(bad)} file{'s' if len(bad) != 1 else ''}",
                  file=sys.stderr)
    return EXIT_ERROR if problems else EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    import json

    from .engine.registry import default_registry

    if args.manifest:
        return _write_manifest(args.manifest, args.output)
    registry = default_registry()
    unknown = [n for n in args.names if n not in registry]
    if unknown:
        from .errors import DgraphError

        raise DgraphError(f"unknown node type(s): {', '.join(unknown)}; run `dgraph nodes` to list them")
    specs = [s for s in registry if not args.names or s.type_name in args.names]
    if args.json:
        print(json.dumps([{
            "type": s.type_name, "version": s.version, "description": s.description, "pack": s.pack,
            "random": s.random, "effect": s.effect,
            "inputs": {n: {"type": str(i.type), "required": i.required,
                           **({"default": i.default} if _plain(i.default) and not i.required else {})}
                       for n, i in s.inputs.items()},
            "outputs": {n: str(o.type) for n, o in s.outputs.items()},
        } for s in specs], indent=2))
        return EXIT_OK
    for spec in specs:
        flags = "".join(f"  ({flag})" for flag, on in (("random", spec.random), ("effect", spec.effect)) if on)
        print(f"{spec.type_name} v{spec.version}  [{spec.pack}]{flags}")
        print(f"    {spec.description}")
        for name, ispec in spec.inputs.items():
            default = "" if ispec.required else f" = {ispec.default!r}"
            print(f"    in   {name}: {ispec.type}{default}" + (f"  — {ispec.description}" if ispec.description else ""))
        for name, ospec in spec.outputs.items():
            print(f"    out  {name}: {ospec.type}")
    return EXIT_OK


def _write_manifest(pack: str, output: str | None) -> int:
    from importlib.metadata import entry_points

    from .engine.manifest import manifest_text, pack_manifest
    from .engine.registry import GROUP, load_installed
    from .errors import DgraphError

    found = [ep for ep in entry_points(group=GROUP) if ep.name == pack]
    if not found:
        names = sorted(ep.name for ep in entry_points(group=GROUP))
        raise DgraphError(f"no installed node pack {pack!r}; installed: {', '.join(names) or 'none'}")
    registry = load_installed(manifests=False)  # the real node types, never an older manifest
    text = manifest_text(pack_manifest(pack, found[0].value, [s for s in registry if s.pack == pack]))
    if output:
        from .configuration import write_text_atomic

        write_text_atomic(output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _plain(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    from .engine.registry import default_registry
    from .engine.schema import workflow_schema

    text = json.dumps(workflow_schema(default_registry()), indent=2) + "\n"
    if args.output:
        from .configuration import write_text_atomic

        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_viz(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .configuration import write_text_atomic
    from .engine import viz

    graph = _load_graph(args.workflow)
    suffix = Path(args.output).suffix.lower() if args.output else ""
    if suffix and suffix not in (".svg", ".mmd", ".md"):
        raise UsageError(f"-o {args.output}: dgraph viz writes .svg (a picture) or .mmd/.md (Mermaid text); "
                         "for a PNG, convert the SVG (e.g. `rsvg-convert graph.svg -o graph.png`)")
    if suffix == ".svg":
        write_text_atomic(args.output, viz.svg(graph.resolved, title=Path(args.workflow).name))
    elif args.output:
        write_text_atomic(args.output, viz.mermaid(graph.resolved))
    else:
        sys.stdout.write(viz.mermaid(graph.resolved))
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .training import Interrupted, train

    try:
        result = train(args.recipe, progress=not args.quiet)
    except Interrupted as stopped:
        from .printable import printable

        print(printable(str(stopped)), file=sys.stderr)
        return EXIT_CANCELLED
    print(f"saved {result.output} after {result.steps} steps (last loss {result.final_loss:.4f}) "
          f"in {result.seconds:.1f}s")
    return EXIT_OK


def _unrecognized(extra: list[str], command: argparse.ArgumentParser) -> str:
    import difflib

    options = [o for action in command._actions for o in action.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(extra[0].split("=")[0], options, n=1)
    return f"unrecognized argument {extra[0]!r}" + (f"; did you mean {close[0]}?" if close else "") + \
        f" (see `dgraph {command.prog.split()[-1]} --help`)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(_command_of(argv))
    args, extra = parser.parse_known_args(argv)
    stdout, sys.stdout = sys.stdout, _PrintableStream(sys.stdout)
    try:
        return _dispatch(parser, args, extra)
    finally:
        sys.stdout = stdout


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> int:
    from .errors import Cancelled, DgraphError
    from .printable import clip, printable

    try:
        if args.command == "run":
            return cmd_run(args, extra, parser._subparsers._group_actions[0].choices["run"])
        if extra:
            raise UsageError(_unrecognized(extra, parser._subparsers._group_actions[0].choices[args.command]))
        return {"validate": cmd_validate, "nodes": cmd_nodes, "schema": cmd_schema, "viz": cmd_viz,
                "export": cmd_export, "convert": cmd_convert, "train": cmd_train, "plan": cmd_plan,
                "push": cmd_push, "lock": cmd_lock, "pull": cmd_pull}[args.command](args)
    except UsageError as error:
        print(printable(clip(f"dgraph {args.command}: {error}")), file=sys.stderr)
        return EXIT_USAGE
    except (Cancelled, KeyboardInterrupt) as error:
        if args.debug:
            raise
        print(printable(f"cancelled: {error}") if str(error) else "cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except DgraphError as error:
        if args.debug:
            raise
        print(printable(clip(f"error: {error}")), file=sys.stderr)
        return error.exit_code
    except Exception as error:  # a bug: say so, briefly, unless asked for the traceback
        if args.debug:
            raise
        print(printable(clip(f"internal error: {type(error).__name__}: {error}")) +
              "\n(rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
