# mailpull - plain make. Outputs go to build/ (BUILD=... to change).
#   make            build build/mailpull
#   make check      install missing packages (as root), build, run every test
#   make demo       pull mail from a throwaway local Dovecot into ./demo/Maildir
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/mailpull
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
LDFLAGS ?=
VERSION  = 0.1.0

PKGS        = openssl sqlite3 inih
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS))
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS   = $(shell pkg-config --libs check)

WARN = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
       -Wmissing-prototypes -Wno-unused-parameter -Wvla
ifneq ($(CI),)
WARN += -Werror
endif
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DMAILPULL_VERSION='"$(VERSION)"' \
	-Iinclude $(WARN) $(PKG_CFLAGS) $(CFLAGS)

SRC     := $(wildcard src/*.c src/*/*.c)
LIB_SRC := $(filter-out src/main.c,$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/src/main.o
LIB     := $(BUILD)/libmailpull.a
BIN     := $(BUILD)/mailpull

# Examples installed to $(DOCDIR)/contrib: systemd units, crontab, passcmd.
CONTRIB := $(wildcard contrib/*.service contrib/*.timer contrib/*.example \
	contrib/*.md)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Shared by the unit tests (the scripted fake server), linked into each.
UNIT_OBJ := $(BUILD)/tests/unit/fake.o

SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

.PHONY: all deps check check-run unit unit-run unit-san integration demo \
	bench fuzz fuzz-smoke docs-check install uninstall clean

all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(PKG_LIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h tests/unit/fake.h \
		$(UNIT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $< $(UNIT_OBJ) \
		$(LIB) $(PKG_LIBS) $(CHECK_LIBS)

$(UNIT_OBJ): ALL_CFLAGS += $(CHECK_CFLAGS)

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJ:.o=.d)

# Packages the build and the tests need; installs them when root.
deps:
	@sh tests/servers/deps.sh

# `make check` = set-up, then every test. The sub-make re-reads pkg-config
# after deps may have installed it.
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: all unit-run unit-san fuzz-smoke integration docs-check

unit: $(UNIT_BIN)

unit-run: $(UNIT_BIN)
	@sh tests/unit/run.sh $(UNIT_BIN)

# The unit tests again, built with AddressSanitizer and UBSan.
unit-san:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san \
		CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" unit-run

# libFuzzer harnesses (clang): `make fuzz` builds them into build/fuzz/;
# fuzz-smoke runs each for a bounded number of inputs (skipped without clang).
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/bin/%)
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined

fuzz:
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/fuzz CC=clang \
		CFLAGS="$(FUZZ_FLAGS)" fuzz-bins

fuzz-bins: $(LIB)
	@mkdir -p $(BUILD)/bin
	@for f in $(FUZZ_SRC); do \
		b=$(BUILD)/bin/$$(basename $$f .c); \
		$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer,address,undefined -o $$b \
			$$f $(LIB) $(PKG_LIBS) || exit 1; \
	done

fuzz-smoke:
	@if command -v clang >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory fuzz && \
		for b in $(BUILD)/fuzz/bin/fuzz_*; do \
			echo "fuzz: $$b"; \
			$$b -runs=300000 -max_total_time=20 -max_len=4096 \
				2>&1 | tail -n 1 || exit 1; \
		done; \
	else echo "fuzz: clang not installed, skipped"; fi

integration: $(BIN)
	@sh tests/integration/run.sh $(abspath $(BIN))

# The man pages, sample.ini and --help in step with the code (and a check
# that this checker can fail); make install / uninstall into a scratch dir.
docs-check: $(BIN)
	@rc=0; \
	python3 tests/docs/check_docs.py --bin $(BIN) || rc=1; \
	python3 tests/docs/check_docs_selftest.py --bin $(BIN) || rc=1; \
	BUILD=$(BUILD) sh tests/docs/check_install.sh || rc=1; \
	exit $$rc

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/servers/demo.sh $(abspath $(BIN))

bench: deps
	@$(MAKE) --no-print-directory all
	@sh tests/bench/pop3.sh $(abspath $(BIN)) && sh tests/bench/imap.sh $(abspath $(BIN))

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(DOCDIR)/contrib
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/mailpull
	install -m 644 man/mailpull.1 $(DESTDIR)$(MANDIR)/man1/mailpull.1
	install -m 644 man/mailpull.ini.5 $(DESTDIR)$(MANDIR)/man5/mailpull.ini.5
	install -m 644 sample.ini README.md $(DESTDIR)$(DOCDIR)/
	install -m 644 $(CONTRIB) $(DESTDIR)$(DOCDIR)/contrib/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mailpull \
		$(DESTDIR)$(MANDIR)/man1/mailpull.1 \
		$(DESTDIR)$(MANDIR)/man5/mailpull.ini.5 \
		$(DESTDIR)$(DOCDIR)/sample.ini $(DESTDIR)$(DOCDIR)/README.md \
		$(addprefix $(DESTDIR)$(DOCDIR)/contrib/,$(notdir $(CONTRIB)))
	-rmdir $(DESTDIR)$(DOCDIR)/contrib $(DESTDIR)$(DOCDIR)

clean:
	rm -rf $(BUILD) demo
