"""The `dgraph` command line.

Exit codes: 0 success; 1 an invalid workflow or a failed run (the message says what and where);
2 a bad command line; 130 cancelled (Ctrl-C); 70 an internal error (a bug: rerun with --debug and report it).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="dgraph", description="Diffusion models for audio and vision as typed workflow graphs.",
        epilog="exit codes: 0 ok, 1 invalid workflow or failed run, 2 bad command line, 130 cancelled, 70 internal error")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Graph inputs arrive as free --flags: never let argparse read --prompt as an abbreviation of --prompt-file.
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **k: _add_parser(*a, allow_abbrev=False, **k)

    p = sub.add_parser("run", help="run a workflow file (path or hf://owner/repo/file.yaml@rev)",
                       description="Run a workflow. Any graph input can be given as --NAME VALUE "
                                   "(e.g. --prompt, --seed, --steps); --set also reaches node inputs.")
    p.add_argument("workflow", nargs="?", help="workflow file, hf://owner/repo/path.yaml@revision")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a graph input (steps=20) or a node input (unet.source=./my-unet); repeatable")
    p.add_argument("--device", help="default device for nodes without their own `device:` (cpu, cuda, cuda:1, mps)")
    p.add_argument("--force-device", action="store_true", help="place every node on --device, whatever the file says")
    p.add_argument("--output-dir", "-o", default="outputs", help="folder for written files (default: outputs)")
    p.add_argument("--output", action="append", dest="outputs", metavar="NAME",
                   help="compute only this graph output (repeatable); default: all")
    p.add_argument("--prompt-file", metavar="TXT", help="prompts, one a line, run as one batch (sets the graph input prompt)")
    p.add_argument("--from-image", metavar="PNG", help="rerun the workflow and inputs embedded in a PNG dgraph wrote")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress display")

    p = sub.add_parser("export", help="write the workflow of a diffusers pipeline folder or repo",
                       description="Read model_index.json of a diffusers pipeline (folder, repo id or hf://repo@rev) "
                                   "and write the equivalent workflow file.")
    p.add_argument("pipeline", help="a folder, owner/repo or hf://owner/repo@revision")
    p.add_argument("--output", "-o", help="file to write (default: stdout)")
    p.add_argument("--pipeline-class", help="build this pipeline class instead (e.g. DDIMPipeline over a DDPM repo)")

    p = sub.add_parser("convert", help="convert an official vocoder checkpoint into safetensors + config.json",
                       description="Read an officially released checkpoint (the only place dgraph reads a pickle, with "
                                   "torch.load(weights_only=True)) and write a folder that from_pretrained and "
                                   "load.vocoder read.")
    p.add_argument("family", choices=["fastdiff", "diffwave", "hifigan"])
    p.add_argument("checkpoint", help="the official checkpoint file")
    p.add_argument("--output", "-o", required=True, help="folder to write")
    p.add_argument("--config", help="HiFi-GAN: the release's config.json (default: guessed from the tensor shapes)")
    p.add_argument("--preset", choices=["v1", "v2", "v3"], help="HiFi-GAN: the generator configuration")

    p = sub.add_parser("validate", help="check workflow files; prints every problem with file:line:column")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="print problems as JSON")

    p = sub.add_parser("nodes", help="list installed node types, their ports and parameters")
    p.add_argument("names", nargs="*", help="show only these node types")
    p.add_argument("--json", action="store_true")

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


def _scalar(text: str) -> Any:
    """A --set value: YAML scalars and flow collections ([1, 2], true, 3.5), read as workflow files are; else the text."""
    from .safe_yaml import ParseError, parse_text

    try:
        return parse_text(text)[0]
    except ParseError:
        return text


def _input_flags(extra: list[str]) -> dict[str, str]:
    """`--name value` / `--name=value` pairs left over by argparse become graph inputs."""
    values: dict[str, str] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r}")
        name, eq, value = token[2:].partition("=")
        if not eq:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise UsageError(f"--{name} needs a value")
            value = extra[i + 1]
            i += 1
        values[name.replace("-", "_")] = value
        i += 1
    return values


# ---------------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, extra: list[str]) -> int:
    from .node import CancelToken
    from .progress import ProgressPrinter

    inputs: dict[str, Any] = _input_flags(extra)
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
    if args.prompt_file:
        inputs["prompt"] = _read_prompts(args.prompt_file)
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--set {item!r}: write KEY=VALUE")
        if "." in key:
            graph.set(key, _scalar(value))
        else:
            inputs[key] = value
    graph.check()
    cancel = CancelToken()

    def on_sigint(signum, frame):  # first Ctrl-C: stop at the next step; second: stop now
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\ncancelling at the next step (Ctrl-C again to abort now)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    started = time.perf_counter()
    try:
        with ProgressPrinter(enabled=not args.quiet) as progress:
            result = graph.execute(args.outputs, device=args.device, force_device=args.force_device,
                                   on_event=progress, cancel=cancel, output_dir=args.output_dir, **inputs)
    finally:
        signal.signal(signal.SIGINT, previous)
    for name, value in result.items():
        print(f"{name}: {_describe(value)}")
    if not args.quiet:
        print(f"done in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return EXIT_OK


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
    from .graph import Graph
    from .hub import parse_source

    if not source.lower().endswith((".yaml", ".yml", ".json")):
        parsed = parse_source(source)
        if parsed.kind == "hub" or Path(source, "model_index.json").is_file():
            return Graph.from_pretrained(source)
    return Graph.load(source)


def cmd_convert(args: argparse.Namespace) -> int:
    from .configuration import read_json
    from .convert import convert

    options = {}
    if args.config:
        options["config"] = read_json(args.config)
    if args.preset:
        options["preset"] = args.preset
    if options and args.family != "hifigan":
        raise UsageError("--config and --preset apply to hifigan checkpoints only")
    folder = convert(args.family, args.checkpoint, args.output, **options)
    print(f"wrote {folder}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from .configuration import write_text_atomic
    from .pipelines import export_text, read_pipeline

    class_name, components, source = read_pipeline(args.pipeline)
    base = args.pipeline if source.kind == "folder" else str(source)
    text = export_text(args.pipeline_class or class_name, base, components)
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _graph_from_image(path: str):
    from .engine.problems import Problem, WorkflowError
    from .errors import DgraphError
    from .graph import Graph
    from .local_files import open_image
    from .safe_yaml import ParseError, parse_text

    try:
        with open_image(path, "--from-image") as picture:
            text = dict(picture.text)  # type: ignore[attr-defined]
    except DgraphError:
        raise
    except (OSError, AttributeError, ValueError, SyntaxError, EOFError) as error:  # PIL's ways to refuse a file
        raise DgraphError(f"{path}: cannot read PNG text metadata: {error}") from None
    if "dgraph:workflow" not in text:
        raise DgraphError(f"{path}: this PNG carries no dgraph workflow (it was not written by image.save "
                          "with embed_workflow: true)")
    # The embedded JSON is read as any workflow file is: safely, bounded, with positions, duplicate keys refused.
    graph = Graph.from_text(text["dgraph:workflow"], f"{path}#workflow")
    graph.check()
    try:
        inputs, _ = parse_text(text.get("dgraph:inputs", "{}"))
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
    from .engine.problems import Problem, WorkflowError
    from .errors import DgraphError
    from .graph import Graph, read_workflow_text

    problems: list[Problem] = []
    for file in args.files:
        try:
            text, filename, base = read_workflow_text(file)
            problems += Graph.from_text(text, filename, base=base).problems
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
    from .engine.registry import default_registry

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


def _plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def cmd_schema(args: argparse.Namespace) -> int:
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
    from .configuration import write_text_atomic
    from .engine import viz

    graph = _load_graph(args.workflow)
    if args.output and args.output.lower().endswith(".svg"):
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
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
            return cmd_run(args, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return {"validate": cmd_validate, "nodes": cmd_nodes, "schema": cmd_schema, "viz": cmd_viz,
                "export": cmd_export, "convert": cmd_convert, "train": cmd_train}[args.command](args)
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
