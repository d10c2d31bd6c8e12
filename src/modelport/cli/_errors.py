"""Map errors to one or two lines and an exit code; a traceback only with --debug."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from modelport._io.redact import redact
from modelport._quiet import quiet_third_party
from modelport.errors import ModelportError

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_UNSAFE, EXIT_VERIFY, EXIT_INTERNAL = 0, 1, 2, 3, 4, 70


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command; typed errors become 'modelport: <message>' plus a hint line."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or bool(os.environ.get("MODELPORT_DEBUG"))
        if not debug:
            quiet_third_party()
        try:
            for v in kwargs.values():  # a SRC/DST the one parser refused (cli._base)
                err = getattr(v, "refused_error", None)
                if err is not None:
                    raise err
            return fn(*args, **kwargs)
        except ModelportError as e:
            if debug:
                click.echo(redact(traceback.format_exc()), err=True)
            click.echo(redact(f"modelport: error: {e}"), err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("modelport: interrupted; no partial output was kept", err=True)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except OSError as e:  # the file system said no: the user's to fix, not a bug
            if debug:
                click.echo(redact(traceback.format_exc()), err=True)
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            click.echo(redact(f"modelport: error: {where}{e.strerror or e}\n"
                       "  hint: check the path, free space and permissions"), err=True)
            sys.exit(EXIT_INPUT)
        except Exception as e:  # a bug: say so in one line, keep the traceback for --debug
            if debug:
                click.echo(redact(traceback.format_exc()), err=True)
            if type(e).__module__.startswith(("botocore", "boto3", "s3transfer")):
                from modelport._io.s3 import storage_error

                se = storage_error(e, "s3://", "store")
                click.echo(redact(f"modelport: error: {se}"), err=True)
                sys.exit(se.exit_code)
            first = (str(e).strip().splitlines() or [""])[0][:500]
            click.echo(redact(f"modelport: internal error: {type(e).__name__}: {first}\n"
                       "  hint: rerun with --debug and report it"), err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper
