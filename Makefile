# KOS verified boot. `make demo` and `make check` are the two entry points;
# see README.md. Everything is built under build/.

BUILD ?= build
CC ?= gcc
# Every recipe fails on the first failing command, also inside a pipe, and
# a target whose recipe failed is deleted.
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
.DELETE_ON_ERROR:
# PKCS#11 (lib/host/pkcs11-sign.c, HSM signing on the host): only p11-kit's header,
# no library; the module is loaded with dlopen() (in glibc's libc since 2.34).
P11_CFLAGS := $(shell pkg-config --cflags p11-kit-1 2>/dev/null || echo -I/usr/include/p11-kit-1)
# lib/ is split by where its code may run (README.md, "Layout"): one archive
# per folder, and each program links the archives of its stage and of the
# stages before it, never one after (check-links below proves it):
#   lib/boot      the Boot Kernel's PID 1, and every stage after it
#   lib/system    the System Kernel's initrd (TPM unsealing, boot.json), and after
#   lib/device    the running device: Node Manager, the device's kos
#   lib/registry  OCI registries, libcurl: kos-node-pull, the host kos
#   lib/host      a vendor's host only: bundle writing, PKCS#11 signing
LIB_DIRS := boot system device registry host
CFLAGS_COMMON := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wformat=2 -Wmissing-prototypes -Wvla \
	-Wshadow -Wno-unused-parameter -fstack-protector-strong -pthread $(addprefix -Ilib/,$(LIB_DIRS)) $(P11_CFLAGS)
CFLAGS ?= -O2 -g
# The PID-1 programs (and the static kos) are built small and stripped;
# CFLAGS given on the command line or in the environment replace their
# optimisation too, and STRIP=0 keeps their symbols, e.g. for a debugger:
#   make CFLAGS='-O0 -g' STRIP=0 build/kos-boot-init
ifeq ($(origin CFLAGS),file)
CFLAGS_SMALL := -Os
CFLAGS_SYSTEM_INIT := -O2
else
CFLAGS_SMALL := $(CFLAGS)
CFLAGS_SYSTEM_INIT := $(CFLAGS)
endif
STRIP ?= 1
STRIP_FLAG := $(if $(filter 0,$(STRIP)),,-s)
# glibc's warnings for a static link (libcrypto's unused DSO and name
# lookups need shared libraries at run time; the programs never call them),
# filtered out of the output; under pipefail the link's own status stands.
STATIC_LINK_FILTER := { grep -v -e 'statically linked applications' -e 'in function' || true; }
HARDEN := -D_FORTIFY_SOURCE=2
LDFLAGS_HARDEN := -Wl,-z,relro,-z,now
LDFLAGS_GC := -Wl,--gc-sections
LIBS := -ljansson -lcrypto -lblkid -lz -pthread
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

LIB_SRC := $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.c))
LIB_HDR := $(wildcard lib/*/*.h)
OCI_SRC := $(wildcard lib/registry/*.c)
# The archives a program of each stage links, its own first (static link
# order: an archive before the ones it uses).
LIBKOS_BOOT := $(BUILD)/libkos-boot.a
LIBKOS_SYSTEM := $(BUILD)/libkos-system.a $(LIBKOS_BOOT)
LIBKOS_DEVICE := $(BUILD)/libkos-device.a $(LIBKOS_SYSTEM)
LIBKOS_REGISTRY := $(BUILD)/libkos-registry.a $(LIBKOS_DEVICE)
LIBKOS_HOST := $(BUILD)/libkos-host.a $(LIBKOS_REGISTRY)
KOS_HOST_ONLY := tools/kos/cmd-oci.c tools/kos/cmd-image.c tools/kos/bmap.c
KOS_SRC := $(filter-out $(KOS_HOST_ONLY),$(wildcard tools/kos/*.c))
# What the host kos adds: kos push and kos pull (libcurl), kos image
# (libfdisk), PKCS#11 signing and bundle writing (lib/host).
KOS_OCI_SRC := $(KOS_HOST_ONLY)
KOS_OCI := -DKOS_WITH_HOST
KOS_HDR := $(wildcard tools/kos/*.h)
# The PID 1 helpers (early/), one file per job; every program that runs
# early in boot links all of them.
EARLY_SRC := early/log.c early/cmdline.c early/modules.c early/device.c early/handoff.c early/watchdog.c
EARLY_HDR := $(wildcard early/*.h)
# Node Manager's installer (its pull deadline) runs in the unit tests on a real sd-event loop.
UNIT_SRC := $(wildcard tests/unit/*.c) $(EARLY_SRC) node/app-health.c node/update-config.c node/installer.c node/child-process.c \
	system/keystore.c system/datafs-reencrypt.c system/datafs-header.c
UNIT_LIBS := $(LIBS) -lcurl -lzstd -lsystemd -lcryptsetup

.PHONY: all check-links deps check check-long demo run bench bench-boot bench-update soak clean asan fuzz unit host-tests boot-kernel

all: $(BUILD)/kos $(BUILD)/kos-boot-init $(BUILD)/kos-system-init $(BUILD)/kos-node-manager $(BUILD)/kos-node-pull $(BUILD)/kos-static check-links

# The Boot Kernel's PID 1: one static binary, no shell in its initramfs.
# The old binary goes first: a failed build leaves none to ship by mistake.
$(BUILD)/kos-boot-init: boot/kos-boot-init.c $(EARLY_SRC) $(EARLY_HDR) $(LIBKOS_BOOT)
	@mkdir -p $(@D) && rm -f $@
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS_SMALL) -Iearly -static boot/kos-boot-init.c $(EARLY_SRC) $(LIBKOS_BOOT) \
		$(LDFLAGS_GC) -Wl,-Map=$@.map -ljansson -lcrypto -lblkid -pthread $(STRIP_FLAG) -o $@ 2>&1 | $(STATIC_LINK_FILTER)

deps:
	@scripts/deps.sh build

# The library archives, one per folder of lib/: each function and object in
# its own section, so a static PID 1 keeps only what it calls (--gc-sections).
$(BUILD)/obj/%.o: lib/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS) -ffunction-sections -fdata-sections -c $< -o $@

lib_objects = $(patsubst lib/%.c,$(BUILD)/obj/%.o,$(wildcard lib/$(1)/*.c))
$(foreach d,$(LIB_DIRS),$(eval $(BUILD)/libkos-$(d).a: $(call lib_objects,$(d))))
$(BUILD)/libkos-%.a:
	@rm -f $@
	ar rcs $@ $^

# A program of an early stage that links code of a later one fails the
# build: the link maps name every archive member a program took in.
check-links: $(BUILD)/kos-boot-init $(BUILD)/kos-system-init $(BUILD)/kos-node-manager $(BUILD)/kos-static
	@scripts/check-links.sh $(BUILD)

$(BUILD)/kos: $(KOS_SRC) $(KOS_HDR) $(KOS_OCI_SRC) $(LIBKOS_HOST)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS) $(KOS_OCI) -Itools/kos -Inode $(KOS_SRC) $(KOS_OCI_SRC) $(LIBKOS_HOST) \
		$(LDFLAGS_HARDEN) $(LIBS) -lcurl -lzstd -lfdisk -o $@

# The test builds (fault points, ASan+UBSan, libFuzzer) compile each source
# of lib/ (and early/) once per build kind, one object a rule, so make -j
# spreads them over the CPUs: $(call objects_of,KIND,SOURCES).
objects_of = $(patsubst %.c,$(BUILD)/$(1)/obj/%.o,$(2))
$(BUILD)/test/obj/%.o: %.c $(LIB_HDR) $(EARLY_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS) $(FAULT_POINTS) -c $< -o $@
$(BUILD)/asan/obj/%.o: %.c $(LIB_HDR) $(EARLY_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -c $< -o $@
$(BUILD)/fuzz/obj/%.o: %.c $(LIB_HDR) $(EARLY_HDR)
	@mkdir -p $(@D)
	clang $(CFLAGS_COMMON) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -Iearly -c $< -o $@

# The test build of kos: the same program with fault points compiled in
# (kos_fault_point(), lib/boot/util.h) for the kill-point tests; never shipped.
FAULT_POINTS := -DKOS_FAULT_POINTS
$(BUILD)/test/kos: $(KOS_SRC) $(KOS_HDR) $(KOS_OCI_SRC) $(call objects_of,test,$(LIB_SRC))
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS) $(FAULT_POINTS) $(KOS_OCI) -Itools/kos -Inode $(KOS_SRC) $(KOS_OCI_SRC) $(call objects_of,test,$(LIB_SRC)) \
		$(LDFLAGS_HARDEN) $(LIBS) -lcurl -lzstd -lfdisk -o $@

$(BUILD)/unit-tests: $(UNIT_SRC) $(EARLY_HDR) $(LIBKOS_HOST)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS) -Itests/unit -Iearly -Isystem -Inode $(UNIT_SRC) $(LIBKOS_HOST) $(LDFLAGS_HARDEN) $(UNIT_LIBS) -o $@

# The ASan+UBSan build: the unit tests and the kos tool, which the host tests
# also run under.
# Both link lib/ compiled once, with the fault points (they do nothing unless
# KOS_FAULT_AT is set, which no unit test does).
ASAN_CFLAGS := -O1 -g $(SAN) $(FAULT_POINTS)
$(BUILD)/asan/unit-tests: $(UNIT_SRC) $(EARLY_HDR) $(call objects_of,asan,$(LIB_SRC))
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -Itests/unit -Iearly -Isystem -Inode $(UNIT_SRC) $(call objects_of,asan,$(LIB_SRC)) $(UNIT_LIBS) -o $@

$(BUILD)/asan/kos: $(KOS_SRC) $(KOS_HDR) $(KOS_OCI_SRC) $(call objects_of,asan,$(LIB_SRC))
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) $(KOS_OCI) -Itools/kos -Inode $(KOS_SRC) $(KOS_OCI_SRC) $(call objects_of,asan,$(LIB_SRC)) $(LIBS) -lcurl -lzstd -lfdisk -o $@

asan: $(BUILD)/asan/unit-tests $(BUILD)/asan/kos

FUZZERS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/fuzz/fuzz_%,$(wildcard tests/fuzz/fuzz_*.c))
# Sources a fuzzer needs beyond lib/ and early/: FUZZ_EXTRA_<name> (none today).
# lib/ and early/ are compiled once for all of them (instrumented, not yet
# linked with libFuzzer's main); each harness links them all.
FUZZ_CFLAGS := -Wno-unused-command-line-argument -O1 -g
FUZZ_OBJ := $(call objects_of,fuzz,$(LIB_SRC) $(EARLY_SRC))
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@mkdir -p $(@D)
	clang $(CFLAGS_COMMON) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined \
		-Iearly -Isystem -Inode $< $(FUZZ_EXTRA_$*) $(FUZZ_OBJ) $(LIBS) -lcurl -lzstd -o $@

fuzz: $(FUZZERS)
# Kept between builds (a pattern rule's objects would be deleted as intermediate).
.SECONDARY: $(FUZZ_OBJ) $(call objects_of,asan,$(LIB_SRC)) $(call objects_of,test,$(LIB_SRC))

# The builds run on every CPU (each rule names all it reads and writes;
# scripts/build-boot-kernel.sh takes a lock of its own).
BUILD_JOBS ?= $(shell nproc)
check:
	@scripts/deps.sh check
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all asan fuzz $(BUILD)/unit-tests $(BUILD)/test/kos $(BUILD)/test/kos-node-manager $(BUILD)/vm/test-system-init boot-kernel deb
	@tests/run.sh

# make check-long: the VM tests that make check leaves out (tests/vm/long.list).
check-long:
	@scripts/deps.sh check
	@$(MAKE) --no-print-directory -j$(BUILD_JOBS) all $(BUILD)/test/kos $(BUILD)/test/kos-node-manager $(BUILD)/vm/test-system-init boot-kernel deb
	@tests/run.sh vm-long

demo:
	@scripts/deps.sh demo
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

run:
	@scripts/deps.sh demo
	@$(MAKE) --no-print-directory all
	@RUN=1 scripts/demo.sh

# make soak CYCLES=N SEED=S: one device through N update cycles under random
# faults (docs/soak.md); resumable, state and report.json in $(BUILD)/soak.
soak:
	@scripts/deps.sh demo
	@$(MAKE) --no-print-directory all deb
	@CYCLES='$(CYCLES)' SEED='$(SEED)' scripts/soak.sh

bench:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh

# What a device downloads for an update, kos pull's chunks against casync
# (issue 24); caches the Debian trees and images in build/bench-update/.
bench-update:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	@scripts/bench-update.sh

bench-boot:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	@scripts/bench-boot.sh

clean:
	rm -rf $(BUILD)

# Stand-in System Kernel init for the Boot Kernel's VM tests.
$(BUILD)/vm/test-system-init: tests/vm/test-system-init.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) -Os -static -s $< -o $@

# The System Kernel's PID 1: dynamically linked (libcryptsetup is shared
# only); kos mkinitrd copies the libraries it needs next to it.
SYSTEM_SRC := system/kos-system-init.c system/stack.c system/keystore.c system/datafs.c system/datafs-luks2.c system/datafs-header.c system/datafs-encrypt.c system/datafs-reencrypt.c $(EARLY_SRC)
$(BUILD)/kos-system-init: $(SYSTEM_SRC) $(wildcard system/*.h) $(EARLY_HDR) $(LIBKOS_SYSTEM)
	@mkdir -p $(@D) && rm -f $@
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS_SYSTEM_INIT) -Iearly -Isystem $(SYSTEM_SRC) $(LIBKOS_SYSTEM) $(LDFLAGS_HARDEN) $(LDFLAGS_GC) -Wl,-Map=$@.map \
		-ljansson -lcrypto -lblkid -lcryptsetup -pthread $(STRIP_FLAG) -o $@

# Node Manager: libsystemd is shared only and present in every systemd root;
# jansson and libcrypto are linked in so the root needs nothing more.
NODE_SRC := node/kos-node-manager.c node/events.c node/app.c node/app-health.c node/confirm.c node/boot-slots.c node/dbx-update.c node/updates.c node/api.c node/varlink-server.c node/beneath.c node/installer.c node/scrub-child.c node/child-process.c node/update-config.c node/factory-reset.c $(EARLY_SRC)
$(BUILD)/kos-node-manager: $(NODE_SRC) $(wildcard node/*.h) $(EARLY_HDR) $(LIBKOS_DEVICE)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) -O2 -Iearly -Inode $(NODE_SRC) $(LIBKOS_DEVICE) $(LDFLAGS_HARDEN) $(LDFLAGS_GC) -Wl,-Map=$@.map \
		-Wl,-Bstatic -ljansson -lcrypto -Wl,-Bdynamic -lsystemd -lblkid -pthread -ldl $(STRIP_FLAG) -o $@

# The test build of Node Manager: fault points compiled in (KOS_FAULT_SLOTS_AT,
# node/boot-slots.c), for the VM test that cuts the power in a Boot Kernel
# slot update (tests/vm/test-boot-kernel-slots.sh); never shipped.
$(BUILD)/test/kos-node-manager: $(NODE_SRC) $(wildcard node/*.h) $(EARLY_HDR) $(LIB_SRC) $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) -O2 $(FAULT_POINTS) -Iearly -Inode $(NODE_SRC) $(foreach d,boot system device,$(wildcard lib/$(d)/*.c)) \
		$(LDFLAGS_HARDEN) $(LDFLAGS_GC) -Wl,-Bstatic -ljansson -lcrypto -Wl,-Bdynamic -lsystemd -lblkid -pthread -ldl -o $@

# Node Manager's pulls from a registry (docs/node-manager.md): a program its
# installer child executes, so that only it needs libcurl in the root.
NODE_PULL_SRC := node/kos-node-pull.c node/update-config.c
$(BUILD)/kos-node-pull: $(NODE_PULL_SRC) node/installer-record.h node/update-config.h $(LIBKOS_REGISTRY)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(HARDEN) -O2 -Inode $(NODE_PULL_SRC) $(LIBKOS_REGISTRY) $(LDFLAGS_HARDEN) $(LDFLAGS_GC) \
		-ljansson -lcrypto -lcurl -lzstd -pthread $(STRIP_FLAG) -o $@

# A static kos for the device's runtime layer (kos node ... on the device).
$(BUILD)/kos-static: $(KOS_SRC) $(KOS_HDR) $(LIBKOS_DEVICE)
	@mkdir -p $(@D) && rm -f $@
	$(CC) $(CFLAGS_COMMON) $(HARDEN) $(CFLAGS_SMALL) -static -Itools/kos -Inode $(KOS_SRC) $(LIBKOS_DEVICE) $(LDFLAGS_GC) -Wl,-Map=$@.map $(LIBS) \
		$(STRIP_FLAG) -o $@ 2>&1 | $(STATIC_LINK_FILTER)

# The Boot Kernel's own kernel: Debian's kernel source, tinyconfig plus
# boot/kernel/kos-boot.config, cached under $(BUILD)/boot-kernel/<hash of the
# inputs>/bzImage, so it is built once per machine (a few minutes on 2 cores).
# A vendor's extra drivers: scripts/build-boot-kernel.sh FRAGMENT...
boot-kernel:
	@BUILD=$(BUILD) nice -n 10 scripts/build-boot-kernel.sh >/dev/null

# ---- Version, manual pages, install, Debian packages (README, "Installing") ----
# One version for `kos --version`, the manual pages and both packages:
# scripts/version.sh (git describe, or the VERSION file of a `make dist`
# tarball); `make deb KOS_VERSION=...` overrides it. $(BUILD)/version changes
# only when the version does, so the programs that print it are rebuilt then.
ifeq ($(origin KOS_VERSION),undefined)
KOS_VERSION := $(shell scripts/version.sh)
endif
# The commit's time, for reproducible man pages, changelog and packages.
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell scripts/version.sh --date)
endif

.PHONY: man install install-device deb dist FORCE
FORCE:
$(BUILD)/version: FORCE
	@mkdir -p $(@D)
	@echo '$(KOS_VERSION)' | cmp -s - $@ || echo '$(KOS_VERSION)' >$@
$(BUILD)/kos $(BUILD)/kos-static $(BUILD)/asan/kos: $(BUILD)/version
$(BUILD)/kos $(BUILD)/kos-static $(BUILD)/asan/kos: CFLAGS_COMMON += -DKOS_VERSION='"$(KOS_VERSION)"'

# Manual pages from docs/man/*.scd (scdoc; not needed by `make all`).
MAN_PAGES := $(patsubst docs/man/%.scd,$(BUILD)/man/%,$(wildcard docs/man/*.scd))
man: $(MAN_PAGES)
$(BUILD)/man/%: docs/man/%.scd $(BUILD)/version
	@mkdir -p $(@D)
	sed 's/@VERSION@/$(KOS_VERSION)/g' $< | SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) scdoc >$@

# make install: the host tool (kos-tools). PREFIX=/usr/local, DESTDIR for staging.
# kos needs BINDIR to be PREFIX/bin to find PREFIX/lib/kos.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# kos mkboot and kos mkinitrd find their inits beside kos or in ../lib/kos/.
install: $(BUILD)/kos $(BUILD)/kos-boot-init $(BUILD)/kos-system-init $(MAN_PAGES)
	install -D -m 755 $(BUILD)/kos $(DESTDIR)$(BINDIR)/kos
	install -D -m 755 -t $(DESTDIR)$(PREFIX)/lib/kos $(BUILD)/kos-boot-init $(BUILD)/kos-system-init
	install -D -m 644 $(BUILD)/man/kos.1 $(DESTDIR)$(MANDIR)/man1/kos.1
	install -D -m 644 $(BUILD)/man/kos-formats.5 $(DESTDIR)$(MANDIR)/man5/kos-formats.5
	install -D -m 644 $(BUILD)/man/kos-node-manager.8 $(DESTDIR)$(MANDIR)/man8/kos-node-manager.8
	install -D -m 644 tools/kos/kos.bash-completion $(DESTDIR)$(BASHCOMPDIR)/kos

# make install-device DESTDIR=ROOT: what a device's root needs (kos-device).
# Fixed paths, not PREFIX: the unit runs /usr/lib/kos/kos-node-manager, which
# runs /usr/lib/kos/kos-node-pull; the units go where `systemctl enable`
# would put a local unit, with multi-user.target's wants link shipped, since a
# layer unpacked with dpkg-deb -x runs no maintainer script.
install-device: $(BUILD)/kos-node-manager $(BUILD)/kos-node-pull $(BUILD)/kos-static
	install -D -m 755 $(BUILD)/kos-node-manager $(DESTDIR)/usr/lib/kos/kos-node-manager
	install -D -m 755 $(BUILD)/kos-node-pull $(DESTDIR)/usr/lib/kos/kos-node-pull
	install -D -m 755 $(BUILD)/kos-static $(DESTDIR)/usr/bin/kos
	install -D -m 644 -t $(DESTDIR)/etc/systemd/system node/units/kos-node-manager.service node/units/kos-app.target
	install -d $(DESTDIR)/etc/systemd/system/multi-user.target.wants
	ln -sfn ../kos-node-manager.service $(DESTDIR)/etc/systemd/system/multi-user.target.wants/kos-node-manager.service

# make deb: $(BUILD)/deb/kos-tools_VERSION_ARCH.deb and kos-device_..., with
# debhelper (packaging/debian, staged under $(BUILD)/deb with a changelog
# entry for this version). Needs debhelper, dpkg-dev, fakeroot and scdoc.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEBS := $(BUILD)/deb/kos-tools_$(KOS_VERSION)_$(DEB_ARCH).deb $(BUILD)/deb/kos-device_$(KOS_VERSION)_$(DEB_ARCH).deb
deb: $(DEBS)
$(DEBS) &: $(BUILD)/kos $(BUILD)/kos-boot-init $(BUILD)/kos-system-init $(BUILD)/kos-static $(BUILD)/kos-node-manager \
		$(BUILD)/kos-node-pull $(MAN_PAGES) README.md $(wildcard docs/*.md) \
		tools/kos/kos.bash-completion node/units/kos-node-manager.service node/units/kos-app.target \
		$(wildcard packaging/debian/* packaging/debian/*/*) scripts/build-debs.sh
	@BUILD=$(BUILD) KOS_VERSION='$(KOS_VERSION)' SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) scripts/build-debs.sh

# make dist: $(BUILD)/kos-VERSION.tar.gz of HEAD, with the VERSION file that
# scripts/version.sh reads where there is no .git.
dist: $(BUILD)/version
	@case '$(KOS_VERSION)' in *dirty) echo "make dist archives HEAD: commit first ($(KOS_VERSION))" >&2; exit 1;; esac
	@mkdir -p $(BUILD)/dist && printf '%s\n%s\n' '$(KOS_VERSION)' '$(SOURCE_DATE_EPOCH)' >$(BUILD)/dist/VERSION
	git archive --format=tar.gz --prefix=kos-$(KOS_VERSION)/ --add-file=$(BUILD)/dist/VERSION \
		-o $(BUILD)/kos-$(KOS_VERSION).tar.gz HEAD
	@echo $(BUILD)/kos-$(KOS_VERSION).tar.gz
