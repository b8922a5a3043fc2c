# Two promises: `make run` starts the service, `make test` passes every test, on a fresh machine.
VENV   ?= .venv
PYTHON ?= python3
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed

.PHONY: install run demo test unit lint docs faults bench bench-console bench-import system-deps clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[local,test]'
	touch $@

.env:
	umask 077; sed -e "s/^WPF_ACCESS_KEY=.*/WPF_ACCESS_KEY=$$(openssl rand -hex 16)/" \
	    -e "s/^WPF_SECRET_KEY=.*/WPF_SECRET_KEY=$$(openssl rand -hex 32)/" config/env.example > $@
	@echo "Created .env with fresh keys: set WORDPRESS_* and ORTTO_* in it, then run '$(VENV)/bin/wpf-bridge check'."

## install: the venv, a .env with fresh keys and var/ (for the SQLite files), without starting anything
install: $(STAMP) .env
	mkdir -p var

## run: the store's migrations (the Procfile's release step), then web and worker together, on SQLite;
## the Procfile's commands come from the venv
run: $(STAMP) .env
	$(VENV)/bin/wpf-bridge migrate
	@# the environment's PORT wins over .env's (honcho would take .env's); the processes read .env themselves
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/honcho start --env /dev/null \
	    --port $(or $(PORT),$(shell sed -n 's/^PORT=//p' .env | tail -1),8000) web worker

## demo: a throwaway WordPress, the Ortto test server with sample people, the bridge and its console,
## a small journey of webhooks (one fails); prints where to look; Ctrl-C removes it all
demo: $(STAMP) system-deps
	$(VENV)/bin/python demo/run.py

## system-deps: what the tests need besides Python: PHP, Debian's WordPress, MariaDB and PostgreSQL (running),
## and Debian's Chromium for the console's browser tests (Playwright drives it; no browser download)
system-deps:
	@if ! command -v php >/dev/null || ! [ -f /usr/share/wordpress/wp-settings.php ] || ! command -v mariadb >/dev/null \
	    || ! php -m | grep -qi mysqli || ! [ -x /usr/bin/chromium ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    php-cli php-mysql wordpress mariadb-server mariadb-client chromium >/dev/null; fi
	@mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1 || { \
	  $(SUDO) mkdir -p /run/mysqld && $(SUDO) chown mysql:mysql /run/mysqld; \
	  $(SUDO) start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql; \
	  for i in $$(seq 60); do mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done; \
	  mariadb -uroot -h127.0.0.1 -e 'select 1' >/dev/null; }
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; \
	  v=$$(ls /etc/postgresql | sort -n | tail -1); \
	  grep -q '^host all all 127.0.0.1/32 trust' /etc/postgresql/$$v/main/pg_hba.conf || \
	    $(SUDO) sed -i '1i host all all 127.0.0.1/32 trust' /etc/postgresql/$$v/main/pg_hba.conf; \
	  $(SUDO) pg_ctlcluster $$v main restart; \
	  for i in $$(seq 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done; }

## lint: the manual built with mkdocs --strict; ruff (rules and format), mypy and the import layers (import-linter contracts in setup.cfg) on
## wpf_bridge/, with no findings (versions pinned in setup.cfg)
lint: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/ruff check wpf_bridge
	$(VENV)/bin/ruff format --check wpf_bridge
	$(VENV)/bin/mypy wpf_bridge
	$(VENV)/bin/lint-imports setup.cfg

## docs: the manual (docs/, MkDocs) served at http://127.0.0.1:8001, rebuilt as you edit it
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

## unit: the rules alone (tests/unit: no WordPress, Ortto or store), in seconds
unit: $(STAMP)
	$(VENV)/bin/python -m pytest tests/unit

## test: the linters, then every test, against a real WordPress and the Ortto test server, on SQLite
## then on PostgreSQL (two web and two worker processes where the Procfile processes run)
test: lint system-deps
	$(VENV)/bin/python -m pytest
	WPF_TEST_DATABASE=postgresql $(VENV)/bin/python -m pytest

## faults: the fault suite alone; WORDPRESS_DOWN=180 keeps WordPress down for minutes
faults: $(STAMP) system-deps
	WPF_FAULTS_WORDPRESS_DOWN=$(or $(WORDPRESS_DOWN),20) $(VENV)/bin/python -m pytest tests/test_faults.py

## bench: ingest, drain and memory figures (bench/run.py), then WordPress -> Ortto's (bench/pushing.py; BENCH_ARGS="--drain 300" for a shorter run)
bench: $(STAMP) system-deps
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk >/dev/null; }
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/pushing.py

## bench-console: the console's pages and /metrics on a store of 100,000 deliveries (SQLite, PostgreSQL)
bench-console: $(STAMP) system-deps
	$(VENV)/bin/python bench/console.py $(BENCH_ARGS)

## bench-import: import --tag of 10,000 tagged among 50,000 Ortto people, scan and queue (SQLite, PostgreSQL)
bench-import: $(STAMP) system-deps
	$(VENV)/bin/python bench/importing.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
