"""The upload page (issue 8) through Flask's test client: log-in, uploads good and bad, problem table, downloads,
district separation, size limit, CSRF, escaping, clean-up.

Expected amounts are hand calculations from the fixture's and the test's own figures (written out below),
never taken from a run of the code under test.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

pytest.importorskip("flask", reason="the web tests need Flask: pip install -e '.[test]'")

from allocation.cli import main  # noqa: E402
from allocation.core.problems import ExitCode  # noqa: E402
from allocation.web.app import create_app, sweep  # noqa: E402
from allocation.web.config import ServeConfigError, check_password, hash_password, load_config  # noqa: E402
from conftest import FIXTURE, RULES  # noqa: E402
from workbooks import write_input, write_rules  # noqa: E402

PASSWORDS = {"wesel": "wesel-passwort-2022", "kleve": "kleve-passwort-2022"}
HASHES = {name: hash_password(password) for name, password in PASSWORDS.items()}  # hashed once: scrypt is slow

# Kreis Wesel 2022 fixture, by hand from its Kostenpositionen sheet and rules/kreis-wesel.yaml (in €):
KIM = Decimal("296000") - Decimal("220000")                                   # Kreisumlage: 76,000.00
JA = Decimal("18450000") + Decimal("6120000") - Decimal("2310000")            # Jugendamt, no Gemeinkosten
OEPNV = Decimal("4250000") - Decimal("1100000")                               # Direktabrechnung 70/30
SB = Decimal("412345.67") + Decimal("38000") - Decimal("90000")               # Direktabrechnung, Fallzahlen
MS = Decimal("1200000") + Decimal("150000") - Decimal("350000")               # Trägerkommune Moers
GRAND = KIM + JA + OEPNV + SB + MS
assert GRAND == Decimal("26846345.67")

LEVY_AND_HOST_RULES = """\
  - id: umlage
    legal_basis: "§ 56 Abs. 1 KrO NRW"
    when: {Traeger: Kreis}
    route: district_levy
  - id: traeger
    legal_basis: "§ 2 GO NRW"
    when: {Traeger: {ne: Kreis}}
    route: host_bears
"""


def eur(amount: Decimal) -> str:
    """German display of an amount, written independently of allocation.money."""
    whole, cents = f"{amount:.2f}".split(".")
    return f"{int(whole):,}".replace(",", ".") + f",{cents} €"


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    shutil.copy(RULES, folder / "kreis-wesel.yaml")
    write_rules(folder / "testkreis.yaml", LEVY_AND_HOST_RULES, district="Testkreis")
    write_rules(folder / "kreis-kleve.yaml", LEVY_AND_HOST_RULES, district="Kreis Kleve")
    return folder


def write_config(tmp_path: Path, rules_dir: Path, *, extra_server: str = "", auth: str = "") -> Path:
    config = tmp_path / "serve.toml"
    config.write_text(f"""
[server]
rules_dir = "{rules_dir}"
work_dir = "{tmp_path / 'arbeit'}"
max_upload_mb = 1
keep_minutes = 30
secret_key = "{'k' * 40}"
{extra_server}
{auth}
[users.wesel]
districts = ["Kreis Wesel", "Testkreis"]
password_hash = "{HASHES['wesel']}"

[users.kleve]
districts = ["Kreis Kleve"]
password_hash = "{HASHES['kleve']}"
""", encoding="utf-8")
    return config


@pytest.fixture
def config(tmp_path, rules_dir):
    return load_config(write_config(tmp_path, rules_dir))


@pytest.fixture
def app(config):
    application = create_app(config)
    application.config["TESTING"] = True
    return application


def csrf(client, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def login(app, name: str):
    client = app.test_client()
    token = csrf(client, "/anmelden")
    response = client.post("/anmelden", data={"benutzer": name, "passwort": PASSWORDS[name], "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def upload(client, path: Path | None = None, data: bytes | None = None, name: str | None = None, token: str | None = None):
    body = data if data is not None else path.read_bytes()
    return client.post("/hochladen", data={"csrf_token": token if token is not None else csrf(client),
                                           "arbeitsmappe": (io.BytesIO(body), name or path.name)},
                       content_type="multipart/form-data")


def result_url(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


# ------------------------------------------------------------------------------------------ log-in


def test_every_page_needs_a_login(app, tmp_path):
    client = app.test_client()
    assert client.get("/").status_code == 302
    assert client.get("/").headers["Location"].endswith("/anmelden")
    assert client.get("/ergebnis/" + "a" * 32).status_code == 302
    refused = client.post("/hochladen", data={"arbeitsmappe": (io.BytesIO(FIXTURE.read_bytes()), "x.xlsx")},
                          content_type="multipart/form-data")
    assert refused.status_code == 401
    assert not any((tmp_path / "arbeit" / "jobs").iterdir())


def test_wrong_password_and_unknown_user_are_refused_alike(app):
    client = app.test_client()
    for name, password in (("wesel", "falsch"), ("niemand", "wesel-passwort-2022")):
        response = client.post("/anmelden", data={"benutzer": name, "passwort": password,
                                                  "csrf_token": csrf(client, "/anmelden")})
        assert response.status_code == 401
        assert "Benutzername oder Passwort ist falsch" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_login_form_without_csrf_token_is_refused(app):
    client = app.test_client()
    response = client.post("/anmelden", data={"benutzer": "wesel", "passwort": PASSWORDS["wesel"]})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_logout_ends_the_session(app):
    client = login(app, "wesel")
    assert client.post("/abmelden", data={"csrf_token": csrf(client)}).status_code == 302
    assert client.get("/").status_code == 302


def test_upload_page_lists_only_the_users_own_rule_files(app):
    page = login(app, "kleve").get("/").get_data(as_text=True)
    assert "kreis-kleve.yaml" in page
    assert "kreis-wesel.yaml" not in page and "testkreis.yaml" not in page
    assert 'type="file"' in page and 'id="ablage"' in page  # plain file input and drop zone


def test_reverse_proxy_header_mode(tmp_path, rules_dir):
    config = load_config(write_config(tmp_path, rules_dir, auth='[auth]\nmode = "header"\nheader = "X-Remote-User"\n'))
    client = create_app(config).test_client()
    assert client.get("/").status_code == 403
    assert client.get("/", headers={"X-Remote-User": "fremder"}).status_code == 403
    page = client.get("/", headers={"X-Remote-User": "kleve"})
    assert page.status_code == 200 and "kreis-kleve.yaml" in page.get_data(as_text=True)


# ------------------------------------------------------------------------------------------ good upload


def test_kreis_wesel_upload_shows_the_uebersicht_and_offers_workbook_and_manifest(app):
    client = login(app, "wesel")
    url = result_url(upload(client, FIXTURE))
    page = client.get(url).get_data(as_text=True)
    assert "Kreis Wesel, Haushaltsjahr 2022" in page and "Probelauf" in page
    table = page[page.index('id="uebersicht"'):page.index("</table>", page.index('id="uebersicht"'))]
    assert table.count("<tr>") == 1 + 13 + 1  # header, 13 municipalities, totals row
    assert "Voerde (Niederrhein)" in table
    footer = table[table.index("<tfoot>"):]
    for amount in (KIM, JA, OEPNV + SB, MS, GRAND):
        assert eur(amount) in footer, eur(amount)
    assert page.count('<g class="balken">') == 13 and "<svg" in page
    assert "Keine Doppelbelastung gefunden" in page  # the fixture's only host service (Kultur) has no levy item

    workbook_response = client.get(url + "/arbeitsmappe")
    assert workbook_response.status_code == 200
    assert "attachment" in workbook_response.headers["Content-Disposition"]
    workbook = load_workbook(io.BytesIO(workbook_response.data), data_only=True)
    rows = list(workbook["Uebersicht"].iter_rows(values_only=True))
    header, totals = rows[0], rows[-1]
    assert totals[0] == "Summe"
    assert Decimal(str(totals[header.index("Summe")])) == GRAND
    protocol = {row[0]: row[1] for row in workbook["Protokoll"].iter_rows(values_only=True)}
    assert protocol["Laufart"] == "Probelauf"

    manifest = json.loads(client.get(url + "/manifest").data)
    assert manifest["total_cents"] == int(GRAND * 100)
    assert manifest["parameters"]["mode"] == "test"


def test_double_burden_finding_is_shown(app, tmp_path):
    # Gemeinde A hosts its own KIM post (deficit 1,000 €) and pays its levy share of the Kreis's KIM post
    # (400 € on bases 100 : 300, so A pays 100 €): a double burden of 1,100 €.
    workbook = write_input(tmp_path / "doppelt.xlsx",
                           [["00000001", "Gemeinde A", 100], ["00000002", "Gemeinde B", 300]],
                           [["OWN", "KIM bei A", "KIM", 1000, 0, 0, 0, "00000001"],
                            ["LEV", "KIM beim Kreis", "KIM", 400, 0, 0, 0, "Kreis"]])
    client = login(app, "wesel")
    page = client.get(result_url(upload(client, workbook))).get_data(as_text=True)
    hints = page[page.index('id="hinweise"'):page.index("</section>", page.index('id="hinweise"'))]
    assert "Doppelbelastung" in hints and "Gemeinde A" in hints
    assert eur(Decimal("1100")) in hints and eur(Decimal("100")) in hints
    assert "Gemeinde B" not in hints


# ------------------------------------------------------------------------------------------ bad upload


def test_bad_workbook_gives_the_problem_table_and_the_marked_copy(app, tmp_path):
    workbook = write_input(tmp_path / "fehlerhaft.xlsx", [["00000001", "Gemeinde A", 100]],
                           [["X1", "Posten", "KIM", "12.000,5O", 0, 0, 0, "Kreis"]])
    client = login(app, "wesel")
    url = result_url(upload(client, workbook))
    page = client.get(url).get_data(as_text=True)
    assert "Die Datei wurde nicht verarbeitet" in page
    table = page[page.index('id="probleme"'):page.index("</table>", page.index('id="probleme"'))]
    row = next(r for r in table.split("<tr") if "input-not-a-number" in r)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
    # Nr., Art, Blatt, Zelle, Problem, Gefunden, Erwartet, Lösung, Code
    assert cells[1] == "Fehler" and cells[2] == "Kostenpositionen" and cells[3] == "D2"
    assert "12.000,5O" in cells[5] and cells[6] and cells[7]
    assert client.get(url + "/arbeitsmappe").status_code == 404  # no result workbook for a failed run

    marked = client.get(url + "/markiert")
    assert marked.status_code == 200
    copy = load_workbook(io.BytesIO(marked.data))
    assert copy.sheetnames[0] == "Fehlerbericht"
    cell = copy["Kostenpositionen"]["D2"]
    assert cell.fill.fgColor.rgb.endswith("FFC7CE") and "input-not-a-number" in cell.comment.text


def test_workbook_of_an_unknown_year_names_only_the_own_districts_rule_files(app, tmp_path):
    workbook = write_input(tmp_path / "jahr.xlsx", [["00000001", "Gemeinde A", 100]],
                           [["X1", "Posten", "KIM", 1, 0, 0, 0, "Kreis"]], district="Kreis Wesel", year=2031)
    client = login(app, "wesel")
    page = client.get(result_url(upload(client, workbook))).get_data(as_text=True)
    assert "rules-no-match" in page and "kreis-wesel.yaml" in page
    assert "kreis-kleve.yaml" not in page and "testkreis.yaml" not in page


def test_non_xlsx_upload_is_refused(app):
    client = login(app, "wesel")
    response = upload(client, data=b"AGS;Gemeinde\n", name="liste.csv")
    assert response.status_code == 400 and ".xlsx" in response.get_data(as_text=True)


# ------------------------------------------------------------------------------------------ who may see what


def test_another_districts_result_and_downloads_are_not_found(app):
    wesel = login(app, "wesel")
    url = result_url(upload(wesel, FIXTURE))
    assert wesel.get(url).status_code == 200
    kleve = login(app, "kleve")
    for path in (url, url + "/arbeitsmappe", url + "/manifest", url + "/markiert"):
        assert kleve.get(path).status_code == 404, path


def test_a_workbook_of_another_district_is_not_run(app):
    client = login(app, "kleve")
    url = result_url(upload(client, FIXTURE))  # Kreis Wesel, uploaded by Kreis Kleve's controller
    page = client.get(url).get_data(as_text=True)
    assert "web-district-not-allowed" in page and "Kreis Wesel" in page
    assert client.get(url + "/arbeitsmappe").status_code == 404
    assert login(app, "wesel").get(url).status_code == 404  # the refused upload belongs to its uploader only


def test_upload_without_csrf_token_is_refused(app, tmp_path):
    client = login(app, "wesel")
    response = upload(client, FIXTURE, token="gefaelscht")
    assert response.status_code == 400
    assert not any((tmp_path / "arbeit" / "jobs").iterdir())


# ------------------------------------------------------------------------------------------ size limit


def test_upload_above_the_limit_is_refused_by_content_length(app, tmp_path):
    client = login(app, "wesel")
    response = client.post("/hochladen", data={"csrf_token": csrf(client),
                                               "arbeitsmappe": (io.BytesIO(b"x" * (2 * 1024 * 1024)), "gross.xlsx")},
                           content_type="multipart/form-data", headers={"X-Requested-With": "fetch"})
    assert response.status_code == 413
    assert "zu groß" in response.get_json()["error"] and "1 MB" in response.get_json()["error"]
    assert not any((tmp_path / "arbeit" / "jobs").iterdir())


def test_upload_above_the_limit_is_refused_by_streamed_size(tmp_path, rules_dir):
    # 1,000 bytes allowed; the request (2,000 bytes of file) stays under the multipart allowance, so only
    # the count of streamed bytes can refuse it.
    config = load_config(write_config(tmp_path, rules_dir, extra_server="max_upload_bytes = 1000"))
    client = login(create_app(config), "wesel")
    response = upload(client, data=b"x" * 2000, name="gross.xlsx")
    assert response.status_code == 413
    assert not any((tmp_path / "arbeit" / "jobs").iterdir())


def test_chunked_upload_without_length_is_cut_at_the_limit(app):
    client = login(app, "wesel")
    body = (b"--B\r\nContent-Disposition: form-data; name=\"arbeitsmappe\"; filename=\"g.xlsx\"\r\n\r\n"
            + b"x" * (2 * 1024 * 1024) + b"\r\n--B--\r\n")
    response = client.post("/hochladen", input_stream=io.BytesIO(body), content_type="multipart/form-data; boundary=B",
                           environ_overrides={"wsgi.input_terminated": True}, headers={"X-Requested-With": "fetch"})
    assert response.status_code == 413


# ------------------------------------------------------------------------------------------ escaping, storage


def test_script_in_a_workbook_cell_is_escaped(app, tmp_path):
    script = "<script>alert('x')</script>"
    good = write_input(tmp_path / "skript.xlsx", [["00000001", script, 100], ["00000002", "Gemeinde B", 300]],
                       [["LEV", "Posten", "KIM", 400, 0, 0, 0, "Kreis"]])
    bad = write_input(tmp_path / "skript-fehler.xlsx", [["00000001", "Gemeinde A", 100]],
                      [["X1", "Posten", "KIM", script, 0, 0, 0, "Kreis"]])
    client = login(app, "wesel")
    for workbook in (good, bad):
        page = client.get(result_url(upload(client, workbook))).get_data(as_text=True)
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(" in page
    assert "Content-Security-Policy" in client.get("/").headers


def test_uploads_are_stored_under_random_names_outside_static_and_removed_after_keep_time(app, config):
    client = login(app, "wesel")
    url = result_url(upload(client, FIXTURE))
    token = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    job_dir = config.work_dir / "jobs" / token
    assert (job_dir / FIXTURE.name).is_file()
    static = Path(app.static_folder).resolve()
    assert static not in job_dir.resolve().parents
    assert client.get(f"/static/../{job_dir.relative_to(config.work_dir)}/{FIXTURE.name}").status_code == 404

    assert sweep(config, now=time.time() + 29 * 60) == 0 and job_dir.exists()
    assert sweep(config, now=time.time() + 31 * 60) == 1
    assert not job_dir.exists()
    assert client.get(url).status_code == 404


# ------------------------------------------------------------------------------------------ config and CLI


def test_hash_password_command_prints_a_checkable_scrypt_hash(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("ein-langes-passwort\n"))
    assert main(["serve", "--hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("scrypt:32768:8:1$")
    assert check_password(printed, "ein-langes-passwort")
    assert not check_password(printed, "ein-anderes-passwort")
    monkeypatch.setattr("sys.stdin", io.StringIO("kurz\n"))
    assert main(["serve", "--hash-password"]) == 2


def test_config_refuses_plain_passwords_and_users_without_district(tmp_path, rules_dir):
    path = tmp_path / "serve.toml"
    path.write_text(f'[server]\nrules_dir = "{rules_dir}"\nwork_dir = "{tmp_path}/w"\n'
                    '[users.a]\ndistricts = ["Kreis Wesel"]\npassword_hash = "geheim"\n'
                    '[users.b]\npassword_hash = "scrypt:1:1:1$x$y"\n', encoding="utf-8")
    with pytest.raises(ServeConfigError) as caught:
        load_config(path)
    codes = {p.code for p in caught.value.problems}
    assert codes == {"serve-config-password", "serve-config-user"}
    assert main(["serve", "--config", str(path)]) == 2


def test_cli_start_path_does_not_import_flask():
    import subprocess
    import sys

    code = "import sys, allocation.cli; allocation.cli.build_parser(); print('flask' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


# ------------------------------------------------------------------------------------------ issue 12/13: hardening


def test_a_saved_cookie_does_not_work_after_logout(app):
    client = login(app, "wesel")
    assert client.get("/").status_code == 200
    saved = client.get_cookie("allocation_session").value
    assert client.post("/abmelden", data={"csrf_token": csrf(client)}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("allocation_session", saved)
    assert replay.get("/").status_code == 302 and replay.get("/").headers["Location"].endswith("/anmelden")


def test_a_session_ends_after_session_hours_on_the_server(tmp_path, rules_dir, monkeypatch):
    config = load_config(write_config(tmp_path, rules_dir, extra_server="session_hours = 2"))
    app = create_app(config)
    client = login(app, "wesel")
    assert client.get("/").status_code == 200
    later = time.time() + 2 * 3600 + 1
    monkeypatch.setattr("allocation.web.sessions._now", lambda: later)  # the cookie itself is still valid
    assert client.get("/").status_code == 302
    assert not any((config.work_dir / "sessions").glob("*.json"))  # the expired session was deleted


def test_session_files_hold_no_usable_id(app, config):
    client = login(app, "wesel")
    sid = client.get_cookie("allocation_session")  # signed: the id itself is inside, not the file name
    (stored,) = (config.work_dir / "sessions").glob("*.json")
    assert re.fullmatch(r"[0-9a-f]{64}\.json", stored.name)
    assert json.loads(stored.read_text(encoding="utf-8"))["user"] == "wesel" and sid is not None


def test_relative_folders_in_the_config_resolve_against_its_folder_and_downloads_work(tmp_path, rules_dir,
                                                                                       monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    shutil.copytree(rules_dir, folder / "regeln")
    (folder / "serve.toml").write_text(write_config(tmp_path, rules_dir).read_text(encoding="utf-8")
                                       .replace(f'rules_dir = "{rules_dir}"', 'rules_dir = "regeln"')
                                       .replace(f'work_dir = "{tmp_path / "arbeit"}"', 'work_dir = "arbeit"'),
                                       encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc/serve.toml"))  # a relative path to the file, relative entries in it
    assert config.work_dir == folder / "arbeit" and config.rules_dir == folder / "regeln"
    client = login(create_app(config), "wesel")
    url = result_url(upload(client, FIXTURE))
    download = client.get(url + "/arbeitsmappe")
    assert download.status_code == 200 and download.data[:2] == b"PK"
    assert client.get(url + "/manifest").status_code == 200


def test_an_upload_name_of_80_multibyte_characters_is_cut_by_bytes(app, config):
    name = "漢" * 80 + ".xlsx"  # 245 bytes: with -probelauf.xlsx.manifest.json far over the 255-byte limit
    client = login(app, "wesel")
    url = result_url(upload(client, FIXTURE, name=name))
    page = client.get(url).get_data(as_text=True)
    assert "Kreis Wesel, Haushaltsjahr 2022" in page
    assert client.get(url + "/arbeitsmappe").status_code == 200
    job_dir = config.work_dir / "jobs" / url.rsplit("/", 1)[1]
    assert (job_dir / ("漢" * 33 + ".xlsx")).is_file()  # 100 bytes = 33 three-byte characters, none cut in half
    assert all(len(p.name.encode()) <= 255 for p in job_dir.iterdir())


def _failed_login(client, name: str, address: str = "127.0.0.1"):
    return client.post("/anmelden", data={"benutzer": name, "passwort": "falsch-falsch", "csrf_token":
                                          csrf(client, "/anmelden")}, environ_base={"REMOTE_ADDR": address})


def _good_login(client, name: str, address: str = "127.0.0.1"):
    return client.post("/anmelden", data={"benutzer": name, "passwort": PASSWORDS[name], "csrf_token":
                                          csrf(client, "/anmelden")}, environ_base={"REMOTE_ADDR": address})


def test_failed_logins_are_limited_per_user_whatever_the_address(tmp_path, rules_dir):
    config = load_config(write_config(tmp_path, rules_dir, extra_server="login_failures_per_user = 3"))
    app = create_app(config)
    client = app.test_client()
    for attempt in range(3):
        assert _failed_login(client, "wesel", f"127.0.0.{attempt + 2}").status_code == 401
    blocked = _good_login(app.test_client(), "wesel", "127.0.0.9")  # even the right password, from elsewhere
    assert blocked.status_code == 429
    assert "Zu viele fehlgeschlagene Anmeldeversuche" in blocked.get_data(as_text=True)
    assert _good_login(app.test_client(), "kleve", "127.0.0.2").status_code == 302  # another user is not affected


def test_failed_logins_are_limited_per_address_whatever_the_user(tmp_path, rules_dir):
    config = load_config(write_config(tmp_path, rules_dir, extra_server="login_failures_per_address = 3"))
    app = create_app(config)
    for name in ("a", "b", "c"):
        assert _failed_login(app.test_client(), name, "127.0.0.5").status_code == 401
    assert _good_login(app.test_client(), "kleve", "127.0.0.5").status_code == 429
    assert _good_login(app.test_client(), "kleve", "127.0.0.6").status_code == 302


def test_successful_logins_are_not_counted(tmp_path, rules_dir):
    config = load_config(write_config(tmp_path, rules_dir, extra_server="login_failures_per_user = 2"))
    app = create_app(config)
    for _ in range(4):
        assert _good_login(app.test_client(), "wesel").status_code == 302


def test_pages_and_json_answers_show_no_server_paths(app, config, rules_dir, monkeypatch):
    from allocation.core.problems import InputError, Location, Problem

    def run_that_names_server_paths(input_path, rules, output, **kwargs):
        raise InputError([Problem("input-test", Location(str(rules), line=3, col=5),
                                  f"Die Datei {input_path} passt nicht zu {rules}",
                                  found=f"{output} und {rules_dir}/kreis-wesel.yaml",
                                  expected=f"etwas in {config.work_dir}", hint=f"siehe {input_path.parent}")])

    monkeypatch.setattr("allocation.runs.pipeline.run", run_that_names_server_paths)
    client = login(app, "wesel")
    response = client.post("/hochladen", data={"csrf_token": csrf(client), "arbeitsmappe": (
        io.BytesIO(FIXTURE.read_bytes()), "eingabe.xlsx")}, content_type="multipart/form-data",
                           headers={"X-Requested-With": "fetch"})
    answer = response.get_data(as_text=True)
    page = client.get(response.get_json()["redirect"]).get_data(as_text=True)
    missing = client.get("/ergebnis/" + "a" * 32).get_data(as_text=True)
    for shown in (answer, page, missing, client.get("/").get_data(as_text=True)):
        for secret in (str(config.work_dir), str(rules_dir), str(config.work_dir.parent)):
            assert secret not in shown
    assert "input-test" in page and "kreis-wesel.yaml" in page and "eingabe.xlsx" in page


def _serve_captured(monkeypatch, argv: list[str]) -> tuple[int, dict]:
    import waitress

    seen: dict = {}

    class FakeServer:  # never listen in a unit test: keep what would have been served
        def __init__(self, app, **options):
            seen.update(options, app=app)
            self.effective_port = options.get("port") or 54321  # `--port 0`: the port the system would choose

        def run(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(waitress, "create_server", FakeServer)
    return main(["serve", *argv]), seen


def test_serve_without_config_uses_the_embedded_default_with_a_token_url(tmp_path, rules_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # has rules/ (the fixture) and no serve.toml
    code, seen = _serve_captured(monkeypatch, ["--port", "8099"])
    assert code == 0 and seen["host"] == "127.0.0.1" and seen["port"] == 8099
    printed = capsys.readouterr().err
    url = re.search(r"http://127\.0\.0\.1:8099(/anmelden\?token=([A-Za-z0-9_-]{40,}))", printed)
    assert url, printed
    client = seen["app"].test_client()
    assert client.get("/").status_code == 302
    assert client.get("/anmelden?token=" + "x" * 43).status_code == 401
    assert client.get("/").status_code == 302
    assert client.get(url.group(1)).status_code == 303
    page = client.get("/").get_data(as_text=True)
    for name in ("kreis-wesel.yaml", "kreis-kleve.yaml", "testkreis.yaml"):  # every district of the folder
        assert name in page
    assert "Kreis Wesel, Haushaltsjahr 2022" in client.get(result_url(upload(client, FIXTURE))).get_data(as_text=True)
    work_dir = Path(re.search(r"Arbeitsordner (\S+) ", printed).group(1))
    assert work_dir.is_dir() and tmp_path not in work_dir.parents  # a temporary folder, not the current one
    shutil.rmtree(work_dir)


def test_serve_without_config_takes_rules_from_the_option_and_listens_only_on_loopback(tmp_path, rules_dir,
                                                                                        monkeypatch, capsys):
    monkeypatch.chdir(tmp_path / "rules")  # no ./rules here
    code, seen = _serve_captured(monkeypatch, ["--host", "0.0.0.0"])
    assert code == ExitCode.USAGE and seen == {}
    code, seen = _serve_captured(monkeypatch, [])
    assert code == ExitCode.USAGE and seen == {}
    assert "--rules" in capsys.readouterr().err
    code, seen = _serve_captured(monkeypatch, ["--rules", str(rules_dir)])
    assert code == 0 and seen["host"] == "127.0.0.1"
    shutil.rmtree(seen["app"].extensions["allocation_config"].work_dir)


def test_serve_prints_the_port_it_bound(tmp_path, rules_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, seen = _serve_captured(monkeypatch, ["--port", "0"])
    assert code == 0 and seen["port"] == 0
    assert "http://127.0.0.1:54321/anmelden?token=" in capsys.readouterr().err  # the bound port, not 0
    shutil.rmtree(seen["app"].extensions["allocation_config"].work_dir)


def test_serve_removes_its_work_folder_on_sigterm(tmp_path, rules_dir):
    """systemd stops a service with SIGTERM: the embedded server's work folder (uploads, results) goes as on
    Ctrl-C. A real server process on a free port."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen([sys.executable, "-m", "allocation", "serve", "--port", "0", "--rules", str(rules_dir)],
                               cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "anmelden?token=" in line:
                break
        text = "".join(lines)
        work_dir = Path(re.search(r"Arbeitsordner (\S+) ", text).group(1))
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/anmelden", text).group(1))
        assert port != 0 and work_dir.is_dir()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert not work_dir.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_with_a_config_works_as_before(tmp_path, rules_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, rules_dir)  # ./serve.toml
    code, seen = _serve_captured(monkeypatch, ["--host", "127.0.0.1"])
    assert code == 0 and seen["app"].extensions["allocation_config"].auth_mode == "password"
    assert seen["channel_timeout"] == 60 and seen["threads"] == 4
    assert _serve_captured(monkeypatch, ["--rules", str(rules_dir)])[0] == ExitCode.USAGE


def test_a_stalled_client_holds_no_worker_and_is_disconnected_after_the_request_timeout(tmp_path, rules_dir):
    import socket
    import threading

    from waitress.server import create_server

    from allocation.web.app import server_options

    config = load_config(write_config(tmp_path, rules_dir, extra_server="request_timeout_seconds = 2\nthreads = 2"))
    server = create_server(create_app(config), host="127.0.0.1", port=0, **server_options(config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    port = server.effective_port
    stalled = []
    try:
        for _ in range(4):  # twice as many stalled uploads as worker threads
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(b"POST /hochladen HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                         b"boundary=B\r\nContent-Length: 500000\r\n\r\n--B\r\n")
            stalled.append(sock)
        other = socket.create_connection(("127.0.0.1", port), timeout=30)  # the bound only prevents a hang
        other.sendall(b"GET /anmelden HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := other.recv(65536):
            answer += chunk
        other.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        for sock in stalled:  # the server closes them: reading ends instead of waiting for ever
            while sock.recv(1024):
                pass
    finally:
        for sock in stalled:
            sock.close()
        server.close()
        thread.join(10)


def test_uploads_waiting_for_a_run_leave_a_worker_thread_for_other_pages(tmp_path, rules_dir, monkeypatch):
    import threading

    import allocation.runs.pipeline

    config = load_config(write_config(tmp_path, rules_dir, extra_server="threads = 2"))
    app = create_app(config)
    started, release = threading.Event(), threading.Event()
    real_run = allocation.runs.pipeline.run

    def slow_run(*args, **kwargs):
        started.set()
        release.wait(60)  # the bound only prevents a hang if the test fails
        return real_run(*args, **kwargs)

    monkeypatch.setattr("allocation.runs.pipeline.run", slow_run)
    first, second = login(app, "wesel"), login(app, "wesel")
    answers = []
    worker = threading.Thread(target=lambda: answers.append(upload(first, FIXTURE).status_code))
    worker.start()
    try:
        assert started.wait(60)
        busy = upload(second, FIXTURE)  # with 2 threads only one upload may wait for or do a run
        assert busy.status_code == 503 and "erneut hoch" in busy.get_data(as_text=True)
        assert second.get("/").status_code == 200
    finally:
        release.set()
        worker.join(60)
    assert answers == [303]
    assert upload(second, FIXTURE).status_code == 303

def test_regression_web_manifest_and_protokoll_carry_no_server_paths(app, config, tmp_path):
    """The manifest offered for download recorded the server's job folder, rules folder and working directory."""
    import os

    client = login(app, "wesel")
    url = result_url(upload(client, FIXTURE))
    text = client.get(url + "/manifest").get_data(as_text=True)
    manifest = json.loads(text)
    for folder in (str(tmp_path), str(config.rules_dir), str(config.work_dir), os.getcwd()):
        assert folder not in text, folder
    assert "working_directory" not in manifest
    assert manifest["input"]["path"] == "kreis-wesel-2022.xlsx" and manifest["rules"][0]["path"] == "kreis-wesel.yaml"
    workbook = load_workbook(io.BytesIO(client.get(url + "/arbeitsmappe").data), read_only=True)
    # every sheet: Entscheidungen's "Regeldatei:Zeile" showed the server's rules folder
    cells = [str(value) for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True)
             for value in row if value]
    assert not any(str(tmp_path) in cell or os.getcwd() in cell for cell in cells)
    assert "kreis-wesel.yaml:15" in cells
    page = client.get(url).get_data(as_text=True)
    assert str(tmp_path) not in page and str(config.rules_dir) not in page


def test_regression_a_forged_job_record_never_sends_a_file_outside_the_job(app, config, tmp_path):
    # job.json is the server's own record; read back, the files it names are plain names of the job folder only
    secret = tmp_path / "geheim.txt"
    secret.write_text("nicht für den Browser", encoding="utf-8")
    client = login(app, "wesel")
    url = result_url(upload(client, FIXTURE))
    token = url.rstrip("/").rsplit("/", 1)[-1]
    record = config.work_dir / "jobs" / token / "job.json"
    job = json.loads(record.read_text(encoding="utf-8"))
    job["output"] = "../" * 20 + str(secret).lstrip("/")
    record.write_text(json.dumps(job), encoding="utf-8")
    response = client.get(url + "/arbeitsmappe")
    assert response.status_code == 404 and b"nicht f" not in response.data


# ------------------------------------------------------------ the embedded default's token and the log-in limits

def _token_app(tmp_path, rules_dir):
    from allocation.web.config import default_config

    config = default_config(rules_dir, tmp_path / "eingebaut")
    return create_app(config), config.login_token


def _token(client, token: str, address: str = "127.0.0.1"):
    return client.get("/anmelden?token=" + token, environ_base={"REMOTE_ADDR": address})


def test_wrong_tokens_from_anywhere_never_lock_out_the_token_holder(tmp_path, rules_dir):
    app, token = _token_app(tmp_path, rules_dir)
    # The embedded default listens on 127.0.0.1 only: every local account shares the address. A stranger's wrong
    # tokens used to count against the one per-user key "user:" (no user name in a token link: 5 per 15 minutes,
    # from any address) and against 127.0.0.1 (20 per 15 minutes), so the right token then answered 429.
    for attempt in range(25):
        assert _token(app.test_client(), "x" * 43, f"127.0.0.{2 + attempt % 3}").status_code == 401
    for attempt in range(25):
        assert _token(app.test_client(), "y" * 43).status_code in (401, 429)
    assert _token(app.test_client(), "z" * 43).status_code == 429  # wrong tokens stay limited per address
    holder = app.test_client()
    assert _token(holder, token).status_code == 303  # the right token always logs in
    assert holder.get("/").status_code == 200


def test_wrong_passwords_for_the_token_user_do_not_lock_out_the_token_holder(tmp_path, rules_dir):
    app, token = _token_app(tmp_path, rules_dir)
    for form in [{"benutzer": "lokal", "passwort": "falsch"}, {"passwort": "falsch"}] * 5:  # for `lokal`, or no name
        assert app.test_client().post("/anmelden?token=" + "x" * 43, data=form,
                                      environ_base={"REMOTE_ADDR": "127.0.0.3"}).status_code == 401
    assert _token(app.test_client(), token).status_code == 303


def test_wrong_tokens_are_counted_per_address_only(tmp_path, rules_dir):
    app, _token_value = _token_app(tmp_path, rules_dir)
    for _ in range(20):  # the default: 20 failed log-ins per address and 15 minutes
        assert _token(app.test_client(), "x" * 43, "127.0.0.7").status_code == 401
    assert _token(app.test_client(), "x" * 43, "127.0.0.7").status_code == 429
    assert _token(app.test_client(), "x" * 43, "127.0.0.8").status_code == 401  # another address: not limited


def test_failed_logins_without_a_user_name_do_not_lock_the_log_in_page(tmp_path, rules_dir):
    config = load_config(write_config(tmp_path, rules_dir, extra_server="login_failures_per_user = 3"))
    app = create_app(config)
    for attempt in range(4):  # an empty user name used to count against the key every GET of the page uses
        assert _failed_login(app.test_client(), "", f"127.0.0.{attempt + 2}").status_code == 401
    assert app.test_client().get("/anmelden", environ_base={"REMOTE_ADDR": "127.0.0.9"}).status_code == 200
    assert _good_login(app.test_client(), "wesel", "127.0.0.9").status_code == 302
    # the per-user limit still holds for a named user, from any address, even with the right password
    for attempt in range(3):
        assert _failed_login(app.test_client(), "wesel", f"127.0.0.{attempt + 2}").status_code == 401
    assert _good_login(app.test_client(), "wesel", "127.0.0.9").status_code == 429
