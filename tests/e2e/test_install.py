"""Installing and packaging (issue 18): `make install` and the installed
binary at work, the man page and the README checked against what the
binary takes (its --help texts, the API's route table), the shell
completions, `make install-python`, `--version`, and `make deb` with
lintian and the package's binary run from `dpkg -x`.

The man page (man/vaurien.1) is written by hand; what keeps it, the
README and the completions true is that every flag the binary lists and
every path of src/ctl/api.c's route table must appear in them here.

The tests that build (make install, make deb) run in the release run of
`make test` only: the ASan run (VAURIEN_SANITIZED) checks the proxy, not
the packaging, and would only build the same package again."""
import gzip
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from conftest import (BIN, ROOT, SANITIZED, Api, Backend, free_port, recv_exactly,
                      wait_until)

packaging = pytest.mark.skipif(SANITIZED, reason="packaging is checked in the release run")


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def make(*args, timeout=600):
    """`make ARGS` in the tree, outside the make that may run this test
    (its jobserver and variables would leak into the one started here)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "DESTDIR", "PREFIX")}
    return run(["make", "-C", ROOT, "--no-print-directory"] + list(args),
               timeout=timeout, env=env)


def help_text(*mode):
    r = run([BIN] + list(mode) + ["--help"], timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- what the binary takes, from its own help texts ---------------------

def proxy_flags():
    """The proxy mode's flags, from the option lines of `vaurien --help`
    ("  --proxy HOST:PORT ...", "  -h, --help ..."): the main ones (the
    generic --behavior-NAME-OPT included), and the options of behaviors
    and protocols (after "behavior options:")."""
    main, options, section = [], [], None
    for line in help_text().splitlines():
        if line.endswith("options:") and not line.startswith(" "):
            section = options if line.startswith(("behavior", "protocol")) else main
            continue
        if not line.startswith("  -") or section is None:
            continue
        for word in line.split():
            if not word.startswith("-"):
                break
            section.append(word.rstrip(","))
    return main, options


def server_flags():
    """`vaurien server --help`'s usage: "[-host HOST] [-version] ..."."""
    return re.findall(r"\[(-[a-z][a-z0-9-]*)", help_text("server"))


def ctl_flags():
    """Every flag `vaurien ctl --help` names, and --help."""
    text = help_text("ctl")
    return sorted(set(re.findall(r"(?:^|[\s\[|])(--?[a-z][a-z0-9-]*)", text, re.M)) |
                  {"--help"})


def ctl_commands():
    text = help_text("ctl")
    cmds = set()
    for line in text.splitlines():
        if re.match(r"  [a-z]", line):
            words = line.split()
            cmds.add(words[0])
            cmds.update(words[i + 1] for i, w in enumerate(words[:-1]) if w == "|")
    return cmds


def demo_backend_flags():
    return re.findall(r"\[(--?[a-z][a-z0-9-]*)", help_text("demo-backend")) + ["--help"]


def names(listing):
    """The names of --list-behaviors or --list-protocols."""
    out = run([BIN, listing], timeout=10).stdout
    return [line.split(":")[0] for line in out.splitlines() if re.match(r"[a-z]", line)]


def api_routes():
    """(path, methods) of the route table in src/ctl/api.c, a name segment
    written as the documents write it: {p} for a proxy, {t} for a toxic."""
    with open(os.path.join(ROOT, "src", "ctl", "api.c")) as f:
        src = f.read()
    table = src[src.index("} routes[] = {"):]
    table = table[:table.index("};")]
    routes = []
    for path, methods in re.findall(r'\{\s*"(/[^"]*)",\s*([M_A-Z |]+)\}', table):
        path = path.replace("*", "{p}", 1).replace("*", "{t}", 1)
        routes.append((path, [m.strip()[2:] for m in methods.split("|")]))
    assert len(routes) >= 15, routes
    return routes


def has_flag(text, flag):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(flag), text) is not None


def has_endpoint(text, method, path):
    """Whether one line of text names the method and the path."""
    pat = re.compile(r"(?<![\w/{}])%s(?![\w/{])" % re.escape(path))
    return any(pat.search(line) and re.search(r"\b%s\b" % method, line)
               for line in text.splitlines())


def man_text(page):
    """The page as man renders it, plain, wide enough that no entry wraps."""
    env = dict(os.environ, MANWIDTH="250", MAN_KEEP_FORMATTING="")
    r = run(["man", "-l", page], env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def readme():
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


MAN_PAGE = os.path.join(ROOT, "man", "vaurien.1")


# --- the documents ---------------------------------------------------------

def test_every_flag_and_endpoint_is_in_the_man_page_and_the_readme():
    main, options = proxy_flags()
    every = {"vaurien": main, "vaurien server": server_flags(), "vaurien ctl": ctl_flags(),
             "vaurien demo-backend": demo_backend_flags()}
    assert "--behavior-NAME-OPT" in main and "--http-port" in main and "-h" in main
    assert "--behavior-delay-sleep" in options and "--protocol-tcp-buffer" in options
    assert "-host" in every["vaurien server"] and "-proxy-metrics" in every["vaurien server"]
    man, doc = man_text(MAN_PAGE), readme()
    missing = []
    for mode, flags in every.items():
        for flag in flags:
            for name, text in (("man page", man), ("README", doc)):
                if not has_flag(text, flag):
                    missing.append("%s: %s %s" % (name, mode, flag))
    # the man page is the reference: every option of every behavior and
    # protocol; the README explains them per behavior, by name
    missing += ["man page: " + f for f in options if not has_flag(man, f)]
    for name in names("--list-behaviors") + names("--list-protocols"):
        missing += ["%s: `%s`" % (where, name) for where, text in (("man page", man),
                    ("README", doc)) if not has_flag(text, name)]
    for path, methods in api_routes():
        for m in methods:
            missing += ["%s: %s %s" % (where, m, path) for where, text in
                        (("man page", man), ("README", doc)) if not has_endpoint(text, m, path)]
    assert missing == [], "not documented:\n" + "\n".join(missing)


def test_the_man_page_renders_without_a_warning():
    r = run(["mandoc", "-T", "lint", "-W", "warning", MAN_PAGE])
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    env = dict(os.environ, MANWIDTH="80")
    r = run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", MAN_PAGE], env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = man_text(MAN_PAGE)
    for section in ["SYNOPSIS", "OPTIONS", "SERVER MODE", "CONTROL API", "EXIT STATUS"]:
        assert "\n" + section + "\n" in text


def test_the_exit_statuses_are_the_man_pages(api):
    """EXIT STATUS: 0 help, 1 could not start (or ctl: the API refused), 2
    bad usage with one line naming it, 3 ctl could not reach the API."""
    assert run([BIN, "--help"]).returncode == 0
    r = run([BIN, "--no-such-flag"])
    assert r.returncode == 2 and r.stderr.startswith("vaurien: error: ")
    assert "--no-such-flag" in r.stderr and r.stderr.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert run([BIN, "--proxy", "127.0.0.1:%d" % port]).returncode == 1
        assert run([BIN, "server", "-host", "127.0.0.1", "-port", str(port)]).returncode == 1
    url = "http://127.0.0.1:%d" % api.port
    r = run([BIN, "ctl", "--host", url, "bogus"])
    assert r.returncode == 2 and r.stderr.startswith("vaurien ctl: error: ")
    assert run([BIN, "ctl", "--host", url, "inspect", "nothing"]).returncode == 1
    assert run([BIN, "ctl", "--host", "http://127.0.0.1:%d" % free_port(), "list"]).returncode == 3


def test_the_readme_documents_installing_and_packaging():
    doc = readme()
    for words in ["make install", "make install-python", "make deb", "DESTDIR", "PREFIX",
                  "vaurien.service", "/etc/vaurien/config.json", "DynamicUser", "--version"]:
        assert words in doc, words


# --- --version ----------------------------------------------------------

def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(vaurien VERSION ([0-9.]+)", f.read()).group(1)


def pkg_version(name):
    return run(["pkg-config", "--modversion", name]).stdout.strip()


def git_head():
    """HEAD's short commit when ROOT is a git work tree's top, else None."""
    r = run(["git", "-C", ROOT, "rev-parse", "--show-toplevel"])
    if r.returncode != 0 or os.path.realpath(r.stdout.strip()) != os.path.realpath(ROOT):
        return None
    return run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"]).stdout.strip()


def parse_version(text):
    lines = text.splitlines()
    return lines[0], dict(line.split(": ", 1) for line in lines[1:])


def test_version_names_the_release_the_commit_and_the_libraries():
    r = run([BIN, "--version"], timeout=10)
    assert r.returncode == 0 and r.stderr == ""
    first, fields = parse_version(r.stdout)
    assert first == "vaurien " + project_version()
    head = git_head()
    if head is None:
        assert fields["commit"] == "unknown"
    else:
        assert re.fullmatch(re.escape(head) + "(-dirty)?", fields["commit"]), fields
    assert fields["libevent"] == pkg_version("libevent")
    assert fields["openssl"] == pkg_version("openssl")
    assert fields["lua"] == pkg_version("lua5.4")
    assert fields["nghttp2"] == pkg_version("libnghttp2")
    assert fields["jansson"] == pkg_version("jansson")
    with open("/usr/include/http_parser.h") as f:
        hp = dict(re.findall(r"#define HTTP_PARSER_VERSION_(MAJOR|MINOR|PATCH) (\d+)", f.read()))
    assert fields["http_parser"] == "%s.%s.%s" % (hp["MAJOR"], hp["MINOR"], hp["PATCH"])
    # server mode: the Toxiproxy API's version on the first line, the rest alike
    s = run([BIN, "server", "-version"], timeout=10)
    assert s.returncode == 0
    assert s.stdout.splitlines()[0] == first + " (Toxiproxy API 2.12.0)"
    assert s.stdout.splitlines()[1:] == r.stdout.splitlines()[1:]


def test_version_says_when_a_loaded_library_is_not_the_one_built_with(tmp_path):
    # a jansson that says it is 9.9.9, loaded ahead of the real one
    src = tmp_path / "jansson_9.c"
    src.write_text('const char *jansson_version_str(void) { return "9.9.9"; }\n')
    lib = tmp_path / "libjansson_9.so"
    assert run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)]).returncode == 0
    env = dict(os.environ, LD_PRELOAD=str(lib),
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0")
    _, fields = parse_version(run([BIN, "--version"], env=env).stdout)
    assert fields["jansson"] == pkg_version("jansson") + " (running 9.9.9)"


def commit_header(tmp_path, source_dir, commit=""):
    out = tmp_path / "vaurien_build.h"
    r = run(["cmake", "-DSOURCE_DIR=%s" % source_dir, "-DVERSION=9.9.9", "-DCOMMIT=%s" % commit,
             "-DOUT=%s" % out, "-P", os.path.join(ROOT, "cmake", "commit.cmake")])
    assert r.returncode == 0, r.stderr
    return re.search(r'VAURIEN_COMMIT "(.*)"', out.read_text()).group(1)


def test_a_tree_without_git_is_built_as_commit_unknown(tmp_path):
    alone = tmp_path / "tarball"
    alone.mkdir()
    assert commit_header(tmp_path, alone) == "unknown"
    # unpacked inside another repository's work tree: not that one's commit
    repo = tmp_path / "repo"
    inner = repo / "vaurien-9.9.9"
    inner.mkdir(parents=True)
    assert run(["git", "init", "-q", str(repo)]).returncode == 0
    assert commit_header(tmp_path, inner) == "unknown"
    assert commit_header(tmp_path, alone, commit="0123456789ab") == "0123456789ab"
    head = git_head()
    if head is not None:
        assert commit_header(tmp_path, ROOT).startswith(head)


def test_every_place_that_states_the_version_agrees():
    version = project_version()
    r = run(["dpkg-parsechangelog", "-l", os.path.join(ROOT, "debian", "changelog"),
             "-S", "Version"])
    assert r.stdout.strip() == version
    with open(os.path.join(ROOT, "clients", "python", "pyproject.toml")) as f:
        assert re.search(r'^version = "%s"$' % re.escape(version), f.read(), re.M)
    with open(os.path.join(ROOT, "clients", "python", "vaurien", "__init__.py")) as f:
        assert '__version__ = "%s"' % version in f.read()


# --- shell completions -----------------------------------------------------

BASH_COMPLETION = os.path.join(ROOT, "completions", "vaurien.bash")
ZSH_COMPLETION = os.path.join(ROOT, "completions", "_vaurien")


def complete_flags():
    """What each mode's completion must offer: every flag of its help, less
    the generic --behavior-NAME-OPT shapes, which are not flags to type."""
    main, options = proxy_flags()
    return {"": [f for f in main + options if not re.search("[A-Z]", f)],
            "server": server_flags(), "ctl": ctl_flags(), "demo-backend": demo_backend_flags()}


def bash_complete(script, *words):
    """COMPREPLY of the bash completion for the command line words (the
    last one being completed), run by bash as a user's shell would."""
    prog = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _vaurien; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    r = run(["bash", "-c", prog, "bash", script, BIN] + list(words))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout.split()


def test_bash_completion_offers_every_flag_of_every_mode(tmp_path):
    r = run(["bash", "-c", 'source "$1" && complete -p vaurien', "bash", BASH_COMPLETION])
    assert r.returncode == 0 and "-F _vaurien" in r.stdout, r.stderr
    for mode, flags in complete_flags().items():
        words = [mode, "-"] if mode else ["-"]
        offered = set(bash_complete(BASH_COMPLETION, *words))
        assert set(flags) <= offered, (mode, sorted(set(flags) - offered))
    assert set(bash_complete(BASH_COMPLETION, "")) == {"server", "ctl", "demo", "demo-backend"}
    assert set(bash_complete(BASH_COMPLETION, "--protocol", "")) == set(names("--list-protocols"))
    assert bash_complete(BASH_COMPLETION, "server", "-overflow", "") == ["close", "backlog"]
    assert set(bash_complete(BASH_COMPLETION, "ctl", "")) == ctl_commands()
    assert bash_complete(BASH_COMPLETION, "ctl", "toxic", "") == ["add", "update", "remove"]
    # the values of ctl's flags are not the command: it comes after them
    for flag, value in [("--host", "http://a:8474"), ("-h", "http://a:8474"),
                        ("--hosts", "fleet.txt"), ("--timeout", "3"),
                        ("--parallel", "8"), ("--token", "t")]:
        assert set(bash_complete(BASH_COMPLETION, "ctl", flag, value, "")) == \
            ctl_commands(), flag
    assert bash_complete(BASH_COMPLETION, "ctl", "--hosts", "a", "toxic", "") == \
        ["add", "update", "remove"]
    (tmp_path / "conf.ini").write_text("")
    assert bash_complete(BASH_COMPLETION, "--config", str(tmp_path / "co")) == \
        [str(tmp_path / "conf.ini")]
    (tmp_path / "fleet.txt").write_text("")
    assert bash_complete(BASH_COMPLETION, "ctl", "--hosts", str(tmp_path / "fl")) == \
        [str(tmp_path / "fleet.txt")]


def zsh(prog, *args):
    r = run(["zsh", "-f", "-c", prog, "zsh"] + list(args))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return r.stdout


needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")


@needs_zsh
def test_zsh_completion_loads_and_offers_every_flag_of_every_mode(tmp_path):
    assert run(["zsh", "-n", ZSH_COMPLETION]).returncode == 0
    # compsys takes it for vaurien from its #compdef line
    fpath = tmp_path / "fpath"
    fpath.mkdir()
    shutil.copy(ZSH_COMPLETION, fpath)
    out = zsh('fpath=("$1" $fpath); autoload -U compinit; compinit -u -d "$2"; '
              'print -r -- $_comps[vaurien]', str(fpath), str(tmp_path / "zcompdump"))
    assert out.strip() == "_vaurien"
    # _vaurien itself, with compsys's _arguments and compadd printing what
    # they are given
    recorder = ('source "$1"; _arguments() { print -rl -- "$@" }; compadd() { print -rl -- "$@" }; '
            'shift; words=("$@"); CURRENT=$#; PREFIX=${words[-1]}; _vaurien')
    for mode, flags in complete_flags().items():
        words = [BIN, mode, "-"] if mode else [BIN, "-"]
        specs = zsh(recorder, ZSH_COMPLETION, *words).split("\n")
        offered = {s.split(":")[0] for s in specs if s.startswith("-")}
        assert set(flags) <= offered, (mode, sorted(set(flags) - offered))
    specs = zsh(recorder, ZSH_COMPLETION, BIN, "--protocol", "").split("\n")
    assert "--protocol:protocol:(%s)" % " ".join(names("--list-protocols")) in specs
    assert "--config:file:_files" in specs
    cmds = zsh(recorder, ZSH_COMPLETION, BIN, "ctl", "").split()
    assert set(cmds) - {"--"} == ctl_commands()
    for flag, value in [("--host", "http://a:8474"), ("-h", "http://a:8474"),
                        ("--hosts", "fleet.txt"), ("--timeout", "3"),
                        ("--parallel", "8"), ("--token", "t")]:
        cmds = zsh(recorder, ZSH_COMPLETION, BIN, "ctl", flag, value, "").split()
        assert set(cmds) - {"--"} == ctl_commands(), flag
    cmds = zsh(recorder, ZSH_COMPLETION, BIN, "ctl", "--hosts", "a", "toxic", "").split()
    assert cmds[-3:] == ["add", "update", "remove"]
    specs = zsh(recorder, ZSH_COMPLETION, BIN, "ctl", "--hosts", "").split("\n")
    assert "--hosts:file:_files" in specs


# --- make install ------------------------------------------------------------

def echo_through(port, data=b"hello through the installed proxy"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        return recv_exactly(s, len(data))


def proxy_and_api_smoke(binary):
    """The binary proxies to a real backend, and its API answers and
    changes what the proxy does."""
    backend = Backend()
    proxy_port, api_port = free_port(), free_port()
    api = Api(["--proxy", "127.0.0.1:%d" % proxy_port, "--backend",
               "127.0.0.1:%d" % backend.port, "--http", "--http-host", "127.0.0.1",
               "--http-port", str(api_port)], api_port, bin=binary)
    try:
        assert echo_through(proxy_port) == b"hello through the installed proxy"
        status, body, _ = api.call("GET", "/version")
        assert (status, body) == (200, {"version": "2.12.0"})
        assert "vaurien" in api.call("GET", "/proxies")[1]
        assert api.call("PUT", "/behavior", {"name": "blackout"})[0] == 200
        with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as s:
            s.sendall(b"x")
            assert s.recv(10) == b""  # closed by the proxy, nothing forwarded
    finally:
        rc, err = api.stop()
        backend.close()
    assert rc == 0, err


@packaging
def test_make_install_then_the_installed_binary_proxies_and_serves_the_api(tmp_path):
    dest = tmp_path / "root"
    r = make("install", "DESTDIR=%s" % dest, "PREFIX=/usr")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    usr = dest / "usr"
    installed = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert installed == ["usr/bin/vaurien", "usr/share/bash-completion/completions/vaurien",
                         "usr/share/man/man1/vaurien.1", "usr/share/zsh/site-functions/_vaurien"]
    binary = str(usr / "bin" / "vaurien")
    assert os.access(binary, os.X_OK)
    assert run([binary, "--version"]).stdout.startswith("vaurien " + project_version() + "\n")
    proxy_and_api_smoke(binary)
    assert "CONTROL API" in man_text(str(usr / "share" / "man" / "man1" / "vaurien.1"))
    assert "-F _vaurien" in run(["bash", "-c", 'source "$1" && complete -p vaurien', "bash",
                                 str(usr / "share" / "bash-completion" / "completions" /
                                     "vaurien")]).stdout
    # PREFIX's default
    r = make("install", "DESTDIR=%s" % (tmp_path / "local"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "local" / "usr" / "local" / "bin" / "vaurien").is_file()


def sitedir(prefix):
    return run([sys.executable, os.path.join(ROOT, "scripts", "python-sitedir"),
                prefix]).stdout.strip()


@packaging
def test_make_install_python_puts_the_package_where_python3_imports_it(tmp_path):
    assert sitedir("/usr") == "/usr/lib/python3/dist-packages"
    assert sitedir("/usr/local") == "/usr/local/lib/python3.%d/dist-packages" % \
        sys.version_info[1]
    source = os.path.join(ROOT, "clients", "python")
    before = sorted(os.listdir(source))
    for prefix in ["/usr", "/usr/local"]:
        dest = tmp_path / prefix.strip("/").replace("/", "_")
        r = make("install-python", "DESTDIR=%s" % dest, "PREFIX=%s" % prefix)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        # built elsewhere: an egg-info in clients/python would register the
        # pytest plugin twice for clients/python/tests
        assert sorted(os.listdir(source)) == before
        site = str(dest) + sitedir(prefix)
        assert os.path.isfile(os.path.join(site, "vaurien", "__init__.py"))
        # imported from there, its pytest plugin found through its entry point
        prog = ("import importlib.metadata as m, vaurien; print(vaurien.__file__); "
                "print(m.version('vaurien')); "
                "print([e.value for e in m.entry_points(group='pytest11') "
                "if e.name == 'vaurien'])")
        env = dict(os.environ, PYTHONPATH=site)
        out = run([sys.executable, "-c", prog], env=env, cwd=str(tmp_path)).stdout.split("\n")
        assert out[0].startswith(site) and out[1] == project_version()
        assert out[2] == "['vaurien.pytest_plugin']"
    # a prefix with a space is one prefix, not two words
    dest = tmp_path / "spaced"
    r = make("install-python", "DESTDIR=%s" % dest, "PREFIX=/opt/my app")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert os.path.isfile(str(dest) + sitedir("/opt/my app") + "/vaurien/__init__.py")
    assert not (dest / "opt" / "my").exists()


# --- make deb --------------------------------------------------------------

@packaging
def test_make_deb_builds_a_lintian_clean_package_whose_binary_runs(tmp_path):
    out = tmp_path / "deb"
    r = make("deb", "DEB_BUILD=%s" % out, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lintian = [line for line in (r.stdout + r.stderr).splitlines()
               if re.match(r"[EWIPX]: vaurien", line)]
    assert [t for t in lintian if t.startswith("E:")] == [], lintian
    # the warnings and notes lintian may give: none but this one, which
    # says the package has no SysV init script (README, "make deb")
    assert [t for t in lintian if not t.startswith("I: vaurien: "
            "package-supports-alternative-init-but-no-init.d-script")] == [], lintian
    version = project_version()
    deb = next(out.glob("vaurien_%s_*.deb" % version))
    assert run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip() == version
    root = tmp_path / "root"
    assert run(["dpkg", "-x", str(deb), str(root)]).returncode == 0
    for path in ["usr/bin/vaurien", "usr/share/man/man1/vaurien.1.gz",
                 "usr/share/bash-completion/completions/vaurien",
                 "usr/share/zsh/vendor-completions/_vaurien",
                 "lib/systemd/system/vaurien.service", "etc/vaurien/config.json",
                 "usr/share/doc/vaurien/copyright"]:
        assert (root / path).is_file(), path
    conffiles = run(["dpkg-deb", "-I", str(deb), "conffiles"]).stdout.split()
    assert conffiles == ["/etc/vaurien/config.json"]

    # the package's binary: its version names the commit of the tree it
    # was built from, though the copy it was built in had no .git
    binary = str(root / "usr" / "bin" / "vaurien")
    first, fields = parse_version(run([binary, "--version"]).stdout)
    assert first == "vaurien " + version
    head = git_head()
    assert fields["commit"] == "unknown" if head is None else fields["commit"].startswith(head)
    proxy_and_api_smoke(binary)
    assert "CONTROL API" in man_text(str(root / "usr/share/man/man1/vaurien.1.gz"))

    # the unit: vaurien server with the shipped config, API on loopback,
    # a user of its own; run here as it says, from the unpacked tree
    unit = (root / "lib/systemd/system/vaurien.service").read_text()
    service = dict(line.split("=", 1) for line in unit.splitlines()
                   if "=" in line and not line.startswith("#"))
    assert service["DynamicUser"] == "yes" and service["Restart"] == "on-failure"
    if shutil.which("systemd-analyze"):
        # systemd knows every key (it also says the binary and the man
        # page are not installed here, which they are not)
        r = run(["systemd-analyze", "verify", str(root / "lib/systemd/system/vaurien.service")])
        assert not re.search(r"Unknown|Invalid|Failed to parse|Missing", r.stderr), r.stderr
    # installed, it is not enabled: postinst enables it only where it was
    # enabled before an upgrade, and deb-systemd-invoke starts no disabled
    # unit
    postinst = run(["dpkg-deb", "-I", str(deb), "postinst"]).stdout.splitlines()
    enables = [i for i, line in enumerate(postinst) if "deb-systemd-helper enable" in line]
    assert enables and all("was-enabled" in postinst[i - 2] for i in enables), postinst
    argv = service["ExecStart"].split()
    assert argv[:2] == ["/usr/bin/vaurien", "server"]
    assert argv[argv.index("-host") + 1] == "localhost"
    assert argv[argv.index("-port") + 1] == "8474"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP: test_reload.py
    assert argv[argv.index("-config") + 1] == "/etc/vaurien/config.json"
    assert json.loads((root / "etc/vaurien/config.json").read_text()) == {"proxies": []}
    port = free_port()
    args = argv[1:]
    args[args.index("-port") + 1] = str(port)
    args[args.index("-config") + 1] = str(root / "etc/vaurien/config.json")
    args[args.index("-host") + 1] = "127.0.0.1"
    api = Api(args, port, bin=binary)
    backend = Backend()
    try:
        assert api.call("GET", "/proxies")[1] == {}
        status, p, _ = api.call("POST", "/proxies", {
            "name": "shop", "listen": "127.0.0.1:0",
            "upstream": "127.0.0.1:%d" % backend.port})
        assert status == 201
        assert echo_through(int(p["listen"].rsplit(":", 1)[1])) == \
            b"hello through the installed proxy"
        # systemctl reload: the file again, which names no proxy, so the
        # one the API made goes (README, "Installing")
        api.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: api.call("GET", "/proxies")[1] == {}, timeout=5)
    finally:
        rc, err = api.stop()
        backend.close()
    assert rc == 0, err
