/* SPDX-License-Identifier: MIT */
/* kos-system-init: PID 1 of the System Kernel's initrd.
 *
 * Rediscovers the manifest the Boot Kernel chose (kos.manifest=<id>), checks
 * it again against this initrd's keyring, mounts each component read-only at
 * /mnt/<name> (loop, then dm-crypt and dm-verity where the manifest says),
 * makes the R/W runtime cache, stacks the OverlayFS root (first component at
 * the bottom), mounts the DataFS at /data, writes /run/kos/boot.json and
 * /run/kos/measurements.json (the Boot Kernel's PCR event), switches
 * root and execs systemd. Any failure names the step and the component, then
 * reboots after a delay, so the Boot Kernel selects again; no half-assembled
 * root is ever started.
 *
 * Command line: exactly the manifest's signed cmdline, then the Boot Kernel's
 * handoff (early_handoff_format(), checked once the manifest is verified;
 * nothing else on it is acted upon before that):
 *   kos.manifest=<sha256> kos.imagefs=UUID=<uuid> kos.imagefs_partuuid=<partuuid|none> kos.tpm_marker=<0|1>
 * and, from the signed part:
 *   kos.rw=tmpfs              R/W cache on a tmpfs (default): empty every boot
 *   kos.rw=wipe:SPEC          on the partition SPEC (PARTLABEL=, LABEL=, UUID=),
 *                             formatted afresh at every boot
 *   kos.rw=persist:SPEC       kept across boots: development only, logged loudly
 *   kos.rw_size=SIZE          tmpfs size (tmpfs syntax, e.g. 512M or 25%); default 50%
 *   kos.data=SPEC             the DataFS; default LABEL=KOS-DATA, else
 *                             PARTLABEL=KOS-DATA (formatted when empty)
 *   kos.datafs=luks2|plain    the DataFS encrypted and sealed to the verified
 *                             chain (system/datafs.h), or plain ext4 (default)
 *   kos.fail_delay=SECONDS    before the reboot on failure; default 10
 *   kos.init=PATH             the init of the new root; default /sbin/init
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "boot-info.h"
#include "datafs.h"
#include "early.h"
#include "keystore.h"
#include "tpm.h"
#include "tpm-seal.h"
#include "select.h"
#include "stack.h"
#include "layout.h"

#define IMAGEFS_MOUNT KOS_INITRAMFS_IMAGEFS_MOUNT
#define LAYERS_DIR "/mnt"
#define RW_MOUNT "/rw"
#define NEW_ROOT "/newroot"
/* Short names for the overlay's lowerdir: /lower/<index> links to
 * /mnt/<name>, so 64 layers of 64-character names fit in the page that
 * mount(2) copies the options into (kernel 6.1 has no lowerdir+ key). */
#define LOWER_INDEX_DIR "/lower"
#define MKFS "/sbin/mkfs.ext4"

/* The TPM first: a key sealed to the verified chain; the initrd's store is
 * for development only (system/keystore.h). */
static const struct kos_key_provider *const key_providers[] = {&kos_key_provider_tpm, &kos_key_provider_initrd, NULL};

struct layer_report {
        char device[160];
        bool verity, encrypted;
        double seconds;
};

struct boot {
        struct kos_manifest *manifest;
        char id[KOS_SHA256_HEX_LEN + 1];
        struct early_handoff handoff;
        char imagefs_device[64];
        struct layer_report layers[KOS_MANIFEST_MAX_COMPONENTS];
        const char *rw_mode;
        struct datafs datafs;
        double t_init, t_modules, t_imagefs, t_manifest, t_layers, t_root;
};

/* Set once /proc/cmdline is known to be the signed cmdline plus the handoff:
 * before that, no kos.* parameter but the handoff's is acted upon. */
static bool cmdline_verified;

static void __attribute__((noreturn)) fail_boot(const char *step, const char *component, const char *format, ...)
        __attribute__((format(printf, 3, 4)));
static void __attribute__((noreturn)) fail_boot(const char *step, const char *component, const char *format, ...) {
        char detail[512];
        va_list ap;
        unsigned delay = cmdline_verified ? early_cmdline_seconds("kos.fail_delay", 10) : 10;

        va_start(ap, format);
        vsnprintf(detail, sizeof detail, format, ap);
        va_end(ap);
        early_log("BOOT FAILED at step '%s'%s%s: %s", step, component ? ", component " : "", component ? component : "",
                  detail);
        early_log("rebooting in %u s so that the Boot Kernel selects again", delay);
        sync();
        sleep(delay);
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

static void load_modules(struct boot *b) {
        struct utsname u;
        char dir[128];
        unsigned loaded = 0;

        if (uname(&u) == 0 && (size_t)snprintf(dir, sizeof dir, "/lib/modules/%s", u.release) < sizeof dir)
                (void)early_load_modules(dir, KOS_MODULES_LIST, &loaded);
        b->t_modules = early_uptime();
        early_log("loaded %u modules", loaded);
}

static int run_mkfs(const char *device, const char *label) {
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execl(MKFS, MKFS, "-q", "-F", "-L", label, device, (char *)NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The handoff, taken from the end of the command line before anything else
 * is read from it. */
static void read_handoff(struct boot *b) {
        if (early_handoff_parse(early_cmdline_raw(), &b->handoff) < 0)
                fail_boot("read command line", NULL,
                          "it does not end with the Boot Kernel's kos.manifest=, kos.imagefs=UUID=, "
                          "kos.imagefs_partuuid=, kos.tpm_marker= (this kernel must be started by the Boot Kernel)");
}

/* The very device the Boot Kernel verified: the only one with its
 * filesystem UUID, on the partition it named. */
static void mount_imagefs(struct boot *b, struct kos_imagefs *img) {
        const char *uuid = b->handoff.imagefs_uuid, *partuuid = b->handoff.imagefs_partuuid;
        struct early_device dev;

        int r = early_find_identified_device(uuid, partuuid, 10000, &dev);
        if (r == -ENOTUNIQ)
                fail_boot("find ImageFS", NULL, "more than one device has UUID %s (listed above): refusing to guess", uuid);
        if (r == -EXDEV)
                fail_boot("find ImageFS", NULL,
                          "%s has UUID %s but partition UUID %s, not %s: not the device the Boot Kernel verified",
                          dev.path, uuid, dev.partuuid[0] ? dev.partuuid : EARLY_NO_PARTUUID, partuuid);
        if (r < 0)
                fail_boot("find ImageFS", NULL, "no device has UUID %s within 10 s: %s", uuid, strerror(-r));
        if (mkdir(IMAGEFS_MOUNT, 0755) < 0 && errno != EEXIST)
                fail_boot("mount ImageFS", NULL, "mkdir: %m");
        if (mount(dev.path, IMAGEFS_MOUNT, dev.type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                fail_boot("mount ImageFS", NULL, "%s (%s): %m", dev.path, dev.type);
        r = kos_imagefs_open(IMAGEFS_MOUNT, img);
        if (r < 0)
                fail_boot("mount ImageFS", NULL, "%s is not an ImageFS: %s", dev.path, strerror(-r));
        snprintf(b->imagefs_device, sizeof b->imagefs_device, "%s", dev.path);
        b->t_imagefs = early_uptime();
        early_log("ImageFS %s (UUID %s, PARTUUID %s) mounted read-only", dev.path, uuid, partuuid);
}

/* /proc/cmdline must be exactly what the Boot Kernel builds from this
 * manifest: its signed cmdline, then the handoff. Anything added, removed
 * or changed (a kos.init= of someone else's choosing) stops the boot here. */
static void check_cmdline(const struct boot *b) {
        char expected[8192];
        const char *actual = early_cmdline_raw();
        size_t len = strcspn(actual, "\n");

        if (early_handoff_format(b->manifest->cmdline, &b->handoff, expected, sizeof expected) < 0)
                fail_boot("check command line", NULL, "cannot build the expected command line");
        if (actual[len] == '\n' && actual[len + 1] != '\0')
                len = SIZE_MAX; /* a newline inside: never what the Boot Kernel passes */
        if (len != strlen(expected) || memcmp(actual, expected, len) != 0) {
                size_t at = 0;
                while (expected[at] && expected[at] == actual[at])
                        at++;
                while (at > 0 && expected[at - 1] != ' ') /* from the start of that word */
                        at--;
                fail_boot("check command line", NULL,
                          "/proc/cmdline is not manifest %s's signed cmdline followed by the Boot Kernel's handoff; "
                          "they differ from byte %zu: \"%.80s\" where \"%.80s\" was signed", b->manifest->name, at,
                          actual + at, expected + at);
        }
        cmdline_verified = true;
        early_log("command line: the signed cmdline of manifest %s and the handoff, nothing else", b->manifest->name);
}

/* The manifest whose bytes hash to id: first among the active ones, then any
 * installed. It is authenticated again with this initrd's keyring. */
static void rediscover_manifest(struct boot *b, const struct kos_imagefs *img) {
        const char *id = b->handoff.manifest_id;
        uint8_t want[KOS_SHA256_LEN];
        struct kos_keyring ring;
        struct kos_candidate c = {0};
        struct kos_error error = KOS_ERROR_NULL;

        if (kos_hex_decode(id, strlen(id), want, sizeof want) < 0)
                fail_boot("find manifest", NULL, "kos.manifest= is missing or not a sha256");
        snprintf(b->id, sizeof b->id, "%s", id);
        if (kos_keyring_load(KOS_KEYRING_DIR, &ring, &error) < 0)
                fail_boot("find manifest", NULL, "%s", error.msg);
        if (!kos_load_manifest_by_id(img, &ring, want, &c, &b->manifest))
                fail_boot(c.reason == KOS_REASON_MANIFEST_MISSING ? "find manifest" : "verify manifest", NULL,
                          "manifest %s: %s: %s", c.name[0] ? c.name : id, kos_reason_to_string(c.reason), c.detail);
        b->t_manifest = early_uptime();
        early_log("manifest %s version %llu (id %.16s...) verified again", b->manifest->name,
                  (unsigned long long)b->manifest->version, id);
}

/* Hashes the component file again (a component without verity data is
 * checked in full before it is mounted). */
static void rehash(const struct kos_component *c, int fd) {
        struct kos_hash_job job = {.fd = fd, .size = c->blob.size, .copy_fd = -1};

        memcpy(job.expected, c->blob.sha256, KOS_SHA256_LEN);
        if (kos_hash_jobs(&job, 1, NULL, NULL) < 0 || job.status != KOS_HASH_MATCH)
                fail_boot("verify component", c->name, "its file no longer hashes to the manifest's sha256 (%s)",
                          job.status == KOS_HASH_MISMATCH ? "content changed" : "size changed or unreadable");
}

static int open_component_file(const struct kos_imagefs *img, const struct kos_component *c) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct stat st;

        kos_hex_encode(c->blob.sha256, KOS_SHA256_LEN, hex);
        int fd = openat(img->components_fd, hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                fail_boot("open component", c->name, "components/%s: %m", hex);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != c->blob.size)
                fail_boot("open component", c->name, "components/%s is not a regular file of %llu bytes", hex,
                          (unsigned long long)c->blob.size);
        return fd;
}

static void mount_component(struct boot *b, const struct kos_imagefs *img, size_t index) {
        const struct kos_component *c = &b->manifest->components[index];
        struct layer_report *rep = &b->layers[index];
        char loop[32], crypt_dev[160], verity_dev[160], name[96], target[128];
        struct kos_error error = KOS_ERROR_NULL;
        const char *device = loop;
        double start = early_uptime();
        int r;

        _cleanup_close_ int fd = open_component_file(img, c);
        if (!c->verity.enabled)
                rehash(c, fd);
        _cleanup_close_ int loop_fd = stack_attach_loop(fd, loop);
        if (loop_fd < 0)
                fail_boot("attach loop device", c->name, "%s", strerror(-loop_fd));
        if (c->encryption.enabled) {
                uint8_t *key = NULL;
                size_t key_len;
                const struct kos_key_provider *provider = NULL;
                struct kos_error why = KOS_ERROR_NULL;
                r = kos_key_lookup(key_providers, c->encryption.key, &key, &key_len, &provider, &why);
                if (r == -ENOKEY)
                        fail_boot("find key", c->name, "key id %s: no such key (looked in: %s; %s)",
                                  c->encryption.key, kos_key_provider_tpm.name, kos_key_provider_initrd.name);
                if (r < 0)
                        fail_boot("find key", c->name, "key id %s (%s): %s", c->encryption.key,
                                  provider->short_name, why.msg);
                early_log("%scomponent %s: key %s from the %s%s", provider->development ? "WARNING: " : "", c->name,
                          c->encryption.key, provider->name,
                          provider->development ? ": as secret as the disk it is on; never on a production device"
                                                : "");
                snprintf(name, sizeof name, "kos-%s-crypt", c->name);
                r = stack_open_luks2(device, name, key, key_len, &error);
                explicit_bzero(key, key_len);
                free(key);
                if (r < 0)
                        fail_boot("open dm-crypt", c->name, "key id %s: %s", c->encryption.key, error.msg);
                snprintf(crypt_dev, sizeof crypt_dev, "/dev/mapper/%s", name);
                device = crypt_dev;
                rep->encrypted = true;
        }
        if (c->verity.enabled) {
                snprintf(name, sizeof name, "kos-%s-verity", c->name);
                r = stack_open_verity(device, name, c->verity.hash_offset, c->verity.root_hash,
                                      c->verify == KOS_VERIFY_HASH_TREE, &error);
                if (r < 0)
                        fail_boot("open dm-verity", c->name, "%s", error.msg);
                snprintf(verity_dev, sizeof verity_dev, "/dev/mapper/%s", name);
                device = verity_dev;
                rep->verity = true;
        }
        snprintf(target, sizeof target, LAYERS_DIR "/%s", c->name);
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                fail_boot("mount component", c->name, "mkdir %s: %m", target);
        if (mount(device, target, kos_component_type_to_string(c->type), MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
                fail_boot("mount component", c->name, "%s as %s: %m", device, kos_component_type_to_string(c->type));
        snprintf(rep->device, sizeof rep->device, "%s", device);
        rep->seconds = early_uptime() - start;
        early_log("component %s: %s%s%s mounted at %s (%.3f s)", c->name, kos_component_type_to_string(c->type),
                  rep->encrypted ? ", LUKS2" : "",
                  !rep->verity                         ? ", re-hashed"
                  : c->verify == KOS_VERIFY_HASH_TREE ? ", dm-verity (restart_on_corruption: hash-tree checked)"
                                                       : ", dm-verity",
                  target, rep->seconds);
}

/* The leave event (docs/tpm.md, "Sealed keys"): once the components are
 * open, KOS_TPM_SEAL_PCR moves past the value keys are sealed to, so that
 * nothing that runs later (systemd, the app, root) can unseal them again
 * until the next platform reset. Every boot with a TPM does it, whether or
 * not a key was unsealed: other manifests' keys must stay shut too. When the
 * handoff says the Boot Kernel extended the marker, or a key was handed out,
 * a leave event that cannot be extended (no TPM found here included) stops
 * the boot (kos_leave_verdict()). */
static void leave_sealed_keys(const struct boot *b) {
        struct kos_tpm t;
        int r = kos_tpm_open(&t);
        unsigned unsealed = kos_key_provider_tpm_unsealed() + (b->datafs.tpm_used ? 1 : 0);

        if (r >= 0)
                r = kos_tpm_seal_leave(&t);
        kos_tpm_close(&t);
        switch (kos_leave_verdict(b->handoff.tpm_marker, r, unsealed)) {
        case KOS_LEAVE_EXTENDED:
                early_log("sealed keys: %u unsealed; PCR %d extended with the leave event \"%s\": no key sealed to the "
                          "verified chain opens again until the next reset",
                          unsealed, KOS_TPM_SEAL_PCR, KOS_TPM_LEAVE_EVENT);
                return;
        case KOS_LEAVE_NO_TPM:
                early_log("sealed keys: no TPM, no leave event");
                return;
        case KOS_LEAVE_WARN:
                early_log("sealed keys: WARNING: cannot extend PCR %d with the leave event: %s", KOS_TPM_SEAL_PCR,
                          strerror(-r));
                return;
        case KOS_LEAVE_STOP:
                if (r == -ENODEV)
                        fail_boot("leave TPM", NULL, "the Boot Kernel extended PCR %d with the verified-boot marker "
                                  "(kos.tpm_marker=1), and this initrd finds no TPM to extend the leave event: keys "
                                  "sealed to the chain would stay open to the running system (does the initrd lack "
                                  "the TPM driver?)", KOS_TPM_SEAL_PCR);
                fail_boot("leave TPM", NULL, "cannot extend PCR %d of TPM %s with the leave event: %s (TPM rc "
                          "0x%x); %s would stay open to the running system", KOS_TPM_SEAL_PCR, t.path, strerror(-r),
                          t.last_rc, unsealed > 0 ? "the unsealed keys" : "keys sealed to the chain");
        }
}

/* Keys sealed to PCR values, opened and sealed again to the signed
 * policies (docs/tpm.md, "Migrating PolicyPCR keys"): their new files. A
 * failure costs only the migration, tried again at the next boot. */
static void write_migrated_keys(void) {
        char message[600];
        int r = kos_key_provider_tpm_write_migrated(IMAGEFS_MOUNT, message, sizeof message);

        if (message[0])
                early_log("sealed keys: %s%s", r < 0 ? "WARNING: " : "", message);
}

static void mount_rw_cache(struct boot *b) {
        const char *mode = early_cmdline_get("kos.rw");
        const char *size = early_cmdline_get("kos.rw_size");
        char options[128];
        struct early_device dev;

        if (mkdir(RW_MOUNT, 0755) < 0 && errno != EEXIST)
                fail_boot("R/W cache", NULL, "mkdir: %m");
        if (!mode || !*mode || strcmp(mode, "tmpfs") == 0) {
                snprintf(options, sizeof options, "mode=0755,size=%s", size && *size ? size : "50%");
                if (mount("kos-rw", RW_MOUNT, "tmpfs", MS_NOSUID | MS_NODEV, options) < 0)
                        fail_boot("R/W cache", NULL, "tmpfs (%s): %m", options);
                b->rw_mode = "tmpfs";
        } else if (strncmp(mode, "wipe:", 5) == 0 || strncmp(mode, "persist:", 8) == 0) {
                bool wipe = mode[0] == 'w';
                const char *spec = strchr(mode, ':') + 1;
                int r = early_find_device(spec, 5000, &dev);
                if (r < 0)
                        fail_boot("R/W cache", NULL, "%s %s",
                                  r == -ENOTUNIQ ? "more than one device (listed above) matches" : "no device matches", spec);
                if (!wipe)
                        early_log("WARNING: kos.rw=persist: runtime changes are KEPT across boots (development only)");
                if ((wipe || !dev.type[0]) && run_mkfs(dev.path, KOS_LABEL_RW) < 0)
                        fail_boot("R/W cache", NULL, "cannot format %s", dev.path);
                if (mount(dev.path, RW_MOUNT, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0)
                        fail_boot("R/W cache", NULL, "mount %s: %m", dev.path);
                b->rw_mode = wipe ? "wipe" : "persist";
        } else
                fail_boot("R/W cache", NULL, "kos.rw=%s is not tmpfs, wipe:SPEC or persist:SPEC", mode);
        if ((mkdir(RW_MOUNT "/upper", 0755) < 0 && errno != EEXIST) || (mkdir(RW_MOUNT "/work", 0755) < 0 && errno != EEXIST))
                fail_boot("R/W cache", NULL, "mkdir upper/work: %m");
        early_log("R/W cache: %s", b->rw_mode);
}

/* lowerdir lists the top layer first: the manifest's last component. The
 * names are /lower/<index>, relative to /lower (the kernel resolves them
 * against this process's working directory, following the links). */
static void mount_overlay(struct boot *b) {
        char options[1024], link[32], target[128];
        size_t n = 0;

        if (mkdir(LOWER_INDEX_DIR, 0755) < 0 && errno != EEXIST)
                fail_boot("overlay root", NULL, "mkdir " LOWER_INDEX_DIR ": %m");
        n += (size_t)snprintf(options + n, sizeof options - n, "lowerdir=");
        for (size_t i = b->manifest->n_components; i-- > 0;) {
                const char *name = b->manifest->components[i].name;
                snprintf(link, sizeof link, LOWER_INDEX_DIR "/%zu", i);
                snprintf(target, sizeof target, LAYERS_DIR "/%s", name);
                if (symlink(target, link) < 0 && errno != EEXIST)
                        fail_boot("overlay root", name, "symlink %s: %m", link);
                n += (size_t)snprintf(options + n, sizeof options - n, "%zu%s", i, i ? ":" : "");
        }
        n += (size_t)snprintf(options + n, sizeof options - n, ",upperdir=" RW_MOUNT "/upper,workdir=" RW_MOUNT "/work");
        if (n >= sizeof options)
                fail_boot("overlay root", NULL, "too many layers for the mount options");
        if (mkdir(NEW_ROOT, 0755) < 0 && errno != EEXIST)
                fail_boot("overlay root", NULL, "mkdir: %m");
        if (chdir(LOWER_INDEX_DIR) < 0)
                fail_boot("overlay root", NULL, "chdir " LOWER_INDEX_DIR ": %m");
        if (mount("kos-root", NEW_ROOT, "overlay", 0, options) < 0)
                fail_boot("overlay root", NULL, "mount overlay (%s): %m", options);
        if (chdir("/") < 0)
                fail_boot("overlay root", NULL, "chdir /: %m");
}

static int mkdir_p(const char *path) {
        char buf[512];

        snprintf(buf, sizeof buf, "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* /run in the new root is a tmpfs that systemd keeps (it does not mount over
 * an existing mount); the layers and the R/W cache move there. */
static void populate_run(struct boot *b) {
        char target[256];

        if (mkdir_p(NEW_ROOT "/run") < 0 ||
            mount("tmpfs", NEW_ROOT "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=20%") < 0)
                fail_boot("populate /run", NULL, "tmpfs on /run: %m");
        for (size_t i = 0; i < b->manifest->n_components; i++) {
                const char *name = b->manifest->components[i].name;
                char source[128];
                snprintf(source, sizeof source, LAYERS_DIR "/%s", name);
                snprintf(target, sizeof target, NEW_ROOT KOS_LAYERS_DIR "/%s", name);
                if (mkdir_p(target) < 0 || mount(source, target, NULL, MS_MOVE, NULL) < 0)
                        fail_boot("populate /run", name, "move %s to %s: %m", source, target);
        }
        if (mkdir_p(NEW_ROOT KOS_RW_DIR) < 0 || mount(RW_MOUNT, NEW_ROOT KOS_RW_DIR, NULL, MS_MOVE, NULL) < 0)
                fail_boot("populate /run", NULL, "move the R/W cache: %m");
}

/* Before the leave event: the DataFS's key may be sealed in the TPM. */
static void prepare_data(struct boot *b) {
        if (datafs_mode_parse(early_cmdline_get("kos.datafs"), &b->datafs.mode) < 0)
                fail_boot("DataFS", NULL, "kos.datafs=%s is not luks2 or plain", early_cmdline_get("kos.datafs"));
        datafs_prepare(&b->datafs, early_cmdline_get("kos.data"), b->handoff.tpm_marker);
}

static void mount_data(struct boot *b) {
        struct datafs *d = &b->datafs;

        if (!d->mount_device[0])
                return; /* missing or locked: said so already */
        if (d->needs_mkfs && run_mkfs(d->mount_device, KOS_LABEL_DATA) < 0) {
                early_log("DataFS: cannot format %s; continuing without /data", d->mount_device);
                d->state = "unmountable";
                return;
        }
        if (mkdir_p(NEW_ROOT KOS_DATA_MOUNT) < 0 || mount(d->mount_device, NEW_ROOT KOS_DATA_MOUNT, "ext4", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
                early_log("DataFS: cannot mount %s: %m; continuing without /data", d->mount_device);
                d->state = "unmountable";
                return;
        }
        early_log("DataFS %s %s at /data%s", d->mount_device, d->state,
                  d->mode == DATAFS_MODE_LUKS2 ? " (LUKS2, key sealed to the verified chain)" : "");
}

static void write_boot_json(const struct boot *b) {
        static struct kos_boot_info info; /* 30 KiB: not on PID 1's stack */

        info = (struct kos_boot_info){.version = b->manifest->version, .n_components = b->manifest->n_components,
                                      .timings = {b->t_init, b->t_modules, b->t_imagefs, b->t_manifest, b->t_layers, b->t_root}};
        for (size_t i = 0; i < b->manifest->n_components; i++) {
                const struct kos_component *c = &b->manifest->components[i];
                struct kos_boot_info_component *out = &info.components[i];
                *out = (struct kos_boot_info_component){.type = c->type, .verity = b->layers[i].verity,
                                                        .encrypted = b->layers[i].encrypted, .verify = c->verify,
                                                        .mount_seconds = b->layers[i].seconds};
                snprintf(out->name, sizeof out->name, "%s", c->name);
                memcpy(out->sha256, c->blob.sha256, KOS_SHA256_LEN);
                snprintf(out->device, sizeof out->device, "%s", b->layers[i].device);
        }
        snprintf(info.name, sizeof info.name, "%s", b->manifest->name);
        snprintf(info.imagefs_uuid, sizeof info.imagefs_uuid, "%s", b->handoff.imagefs_uuid);
        snprintf(info.imagefs_partuuid, sizeof info.imagefs_partuuid, "%s", b->handoff.imagefs_partuuid);
        snprintf(info.imagefs_device, sizeof info.imagefs_device, "%s", b->imagefs_device);
        snprintf(info.rw, sizeof info.rw, "%s", b->rw_mode);
        snprintf(info.data_state, sizeof info.data_state, "%s", b->datafs.state);
        snprintf(info.data_device, sizeof info.data_device, "%s", b->datafs.device);
        snprintf(info.data_encryption, sizeof info.data_encryption, "%s",
                 b->datafs.mode == DATAFS_MODE_LUKS2 ? "luks2" : "none");
        snprintf(info.data_reason, sizeof info.data_reason, "%s", b->datafs.reason);
        int r = kos_hex_decode(b->id, strlen(b->id), info.id, KOS_SHA256_LEN);
        if (r >= 0)
                r = kos_boot_info_write(NEW_ROOT KOS_BOOT_INFO_FILE, &info);
        if (r < 0)
                fail_boot("write boot.json", NULL, "cannot write " KOS_BOOT_INFO_FILE ": %s", strerror(-r));
}

/* The Boot Kernel's measurement (docs/tpm.md, "Measured boot"), published:
 * the one event it extended PCR 8 with, recomputed from the manifest id this
 * kernel was handed and verified again, and whether PCR 8 equals that event
 * replayed from a reset PCR. This stage sends no TPM command: it reads the
 * PCR through sysfs. Never fatal: the file says what it could not check. */
static void write_measurements(const struct boot *b) {
        uint8_t id[KOS_SHA256_LEN], digest[KOS_SHA256_LEN], event[KOS_TPM_EVENT_LEN], replayed[KOS_SHA256_LEN],
                pcr[KOS_SHA256_LEN];
        char digest_hex[KOS_SHA256_HEX_LEN + 1], replayed_hex[KOS_SHA256_HEX_LEN + 1],
                pcr_hex[KOS_SHA256_HEX_LEN + 1], event_hex[2 * KOS_TPM_EVENT_LEN + 1];

        if (kos_hex_decode(b->id, strlen(b->id), id, sizeof id) < 0 || kos_tpm_manifest_event_digest(id, digest) < 0 ||
            kos_tpm_manifest_expected_pcr(id, replayed) < 0) {
                early_log("measurements: cannot compute the event of manifest %s", b->id);
                return;
        }
        kos_tpm_manifest_event(id, event);
        kos_hex_encode(event, sizeof event, event_hex);
        kos_hex_encode(digest, sizeof digest, digest_hex);
        kos_hex_encode(replayed, sizeof replayed, replayed_hex);
        int r = kos_tpm_sysfs_pcr_read(KOS_TPM_PCR, pcr);
        bool matches = r >= 0 && kos_digest_equal(pcr, replayed);
        if (r >= 0)
                kos_hex_encode(pcr, sizeof pcr, pcr_hex);
        json_t *root = json_pack("{s:b, s:i, s:s, s:[{s:i, s:s, s:s, s:s, s:s, s:s}], s:s, s:o, s:b}", "tpm", r >= 0,
                                 "pcr", KOS_TPM_PCR, "bank", "sha256", "events", "pcr", KOS_TPM_PCR, "type",
                                 "kos-manifest", "manifest", b->manifest->name, "id", b->id, "event", event_hex,
                                 "digest", digest_hex, "replayed", replayed_hex, "pcr_value",
                                 r >= 0 ? json_string(pcr_hex) : json_null(), "matches", matches);
        if (!root || json_dump_file(root, NEW_ROOT KOS_MEASUREMENTS_FILE, JSON_INDENT(2)) < 0)
                early_log("measurements: cannot write " KOS_MEASUREMENTS_FILE);
        json_decref(root);
        if (r < 0)
                early_log("measurements: no TPM PCR %d to check (%s)", KOS_TPM_PCR, strerror(-r));
        else
                early_log("measurements: PCR %d %s the Boot Kernel's event for manifest %s", KOS_TPM_PCR,
                          matches ? "matches" : "DOES NOT match", b->manifest->name);
}

/* Frees the initramfs (it is a rootfs that cannot be unmounted): removes every
 * file on the same device, never crossing into a mount. */
static void delete_tree(int dirfd, dev_t root_dev) {
        DIR *d = fdopendir(dirfd);
        if (!d) {
                close(dirfd);
                return;
        }
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != root_dev)
                        continue;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                delete_tree(sub, root_dev);
                        (void)unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
                } else
                        (void)unlinkat(dirfd, de->d_name, 0);
        }
        closedir(d);
}

static void __attribute__((noreturn)) switch_root(void) {
        const char *init = early_cmdline_get("kos.init");
        const char *api[] = {"/proc", "/sys", "/dev"};
        struct stat st;

        if (!init || !*init)
                init = "/sbin/init";
        for (size_t i = 0; i < ELEMENTSOF(api); i++) {
                char target[64];
                snprintf(target, sizeof target, NEW_ROOT "%s", api[i]);
                if (mkdir_p(target) < 0 || mount(api[i], target, NULL, MS_MOVE, NULL) < 0)
                        fail_boot("switch root", NULL, "move %s: %m", api[i]);
        }
        if (chdir(NEW_ROOT) < 0 || stat("/", &st) < 0)
                fail_boot("switch root", NULL, "chdir: %m");
        delete_tree(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), st.st_dev);
        if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
                /* /proc was moved: no logging path through it is needed here. */
                early_log("switch root failed: %m");
                sync();
                reboot(RB_AUTOBOOT);
        }
        early_log("starting %s", init);
        execl(init, init, (char *)NULL);
        early_log("cannot start %s: %m; rebooting", init);
        sync();
        sleep(10);
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

int main(void) {
        struct boot b = {0};
        struct kos_imagefs img = KOS_IMAGEFS_NULL;
        int r;

        early_log_init("kos-system");
        b.t_init = early_uptime();
        if ((r = early_mount_api_filesystems()) < 0)
                early_log("cannot mount /proc, /sys or /dev: %s", strerror(-r));
        early_log("System Kernel init started (cycles %llu)", (unsigned long long)early_cycles());
        if (early_cmdline_load() < 0)
                fail_boot("read command line", NULL, "cannot read /proc/cmdline");
        read_handoff(&b);
        /* libdevmapper must create /dev/mapper nodes itself: no udev runs here. */
        setenv("DM_DISABLE_UDEV", "1", 1);
        load_modules(&b);
        mount_imagefs(&b, &img);
        rediscover_manifest(&b, &img);
        check_cmdline(&b);
        if (mkdir(LAYERS_DIR, 0755) < 0 && errno != EEXIST)
                fail_boot("mount component", NULL, "mkdir " LAYERS_DIR ": %m");
        kos_key_provider_tpm_set_imagefs(img.root_fd);
        for (size_t i = 0; i < b.manifest->n_components; i++)
                mount_component(&b, &img, i);
        prepare_data(&b);
        leave_sealed_keys(&b);
        write_migrated_keys();
        b.t_layers = early_uptime();
        kos_key_provider_tpm_set_imagefs(-1);
        kos_imagefs_close(&img);
        mount_rw_cache(&b);
        mount_overlay(&b);
        populate_run(&b);
        mount_data(&b);
        b.t_root = early_uptime();
        write_boot_json(&b);
        write_measurements(&b);
        early_log("root assembled from %zu layers of manifest %s in %.3f s since init start",
                  b.manifest->n_components, b.manifest->name, b.t_root - b.t_init);
        /* The ImageFS stays mounted under the old root until the switch frees it. */
        umount2(IMAGEFS_MOUNT, MNT_DETACH);
        switch_root();
}
