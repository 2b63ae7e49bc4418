/* SPDX-License-Identifier: MIT */
/* kos-node-manager: the first KOS service systemd starts (Type=notify, with a
 * watchdog). It
 *   - installs update bundles staged in /data/kos/inbox/ (or on a partition
 *     labelled KOS-UPDATE) and reboots into them: the boot is intercepted;
 *   - holds, with kos.hold on the kernel command line or through its API,
 *     instead of starting the app;
 *   - otherwise asks systemd (over its private D-Bus socket, sd-bus) to start
 *     kos-app.target, follows the job, and marks the boot good once the
 *     target has stayed active for kos.settle seconds (default 30);
 *   - then reads every "verify": "hash-tree" component to its end through
 *     its dm-verity mapping (the scrub, in a child at idle priority), and
 *     only then removes the Boot Kernel's unconfirmed marker;
 *   - answers its Varlink API on /run/kos/node.sock (docs/node-manager.md);
 *     only root may call the methods that change anything.
 * Everything happens on one sd-event loop that nothing may block: installs
 * and the scrub run in child processes (installer.c, scrub-child.c), each
 * API client has its own non-blocking connection (varlink-server.c), and
 * the DataFS and update drives are only read through beneath.c (no
 * symlinks, regular files only).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"
#include "boot-info.h"
#include "bootstate.h"
#include "bundle.h"
#include "early.h"
#include "installer.h"
#include "layout.h"
#include "manifest.h"
#include "mark-good.h"
#include "rollback.h"
#include "select.h"
#include "scrub-child.h"
#include "update-config.h"
#include "varlink-server.h"

#define SOCKET_PATH KOS_NODE_SOCKET
#define IMAGEFS_MOUNT KOS_RUN_DIR "/imagefs"
#define DATA_KOS "/data/kos" /* inbox/, processed/, rejected/, events: all opened beneath it */
#define UPDATE_MOUNT KOS_RUN_DIR "/update"
#define PROGRESS_EVENT_INTERVAL_NS (5 * 1000000000ULL)
#define SCRUB_LOG_INTERVAL_NS (10 * 1000000000ULL)
#define BUNDLES_MAX 64
#define APP_TARGET "kos-app.target"

/* The only filesystems an update drive may hold: a USB stick's usual ones.
 * Every other driver stays out of reach of whoever formats the stick. */
static const char *const update_drive_types[] = {"vfat", "exfat", "ext4"};

enum state { STARTING, INSTALLING, HOLDING, STARTING_APP, SETTLING, RUNNING, APP_FAILED, REBOOTING };
static const char *const state_names[] = {"starting", "installing", "holding", "starting-app", "settling", "running",
                                          "app-failed", "rebooting"};

enum bundle_source { FROM_INBOX, FROM_DRIVE, FROM_API, FROM_REGISTRY };

/* The scrub that confirms a boot with hash-tree components (lib/scrub.h):
 * pending until the boot is marked good. */
enum scrub_state { SCRUB_PENDING, SCRUB_RUNNING, SCRUB_DONE, SCRUB_FAILED };
static const char *const scrub_state_names[] = {"pending", "running", "done", "failed"};

struct scrub_job {
        enum scrub_state state;
        struct kos_scrub_report report;
        uint64_t last_log_ns;
};

/* The install that runs (at most one), and the bundles still to try at boot. */
struct install_job {
        bool running;
        enum bundle_source source;
        char name[300];                     /* escaped, for logs and status */
        char file[256];                     /* as in the directory (inbox, drive) */
        struct varlink_connection *caller;  /* FROM_API: answered when done */
        uint64_t done, total, last_event_ns;
};

struct boot_updates {
        enum bundle_source source; /* the directory being worked through */
        int dir_fd;                /* the inbox or the drive's root, or -1 */
        bool drive_mounted;
        char *names[BUNDLES_MAX];
        size_t count, next;
};

struct node {
        sd_event *event;
        sd_bus *bus;
        struct kos_imagefs img;
        struct kos_keyring ring;
        bool have_imagefs, have_keyring;
        struct kos_boot_info boot; /* KOS_BOOT_INFO_FILE */
        bool have_floor;
        struct kos_rollback_floor floor; /* read at start and after marking good, for Status */
        char name[KOS_NAME_MAX + 1];
        char id_hex[KOS_SHA256_HEX_LEN + 1];
        uint8_t id[KOS_SHA256_LEN];
        long long version;
        enum state state;
        char app_job[256];
        unsigned settle;
        bool marked_good;
        bool hold; /* Hold was called, or kos.hold */
        struct install_job job;
        struct scrub_job scrub;
        struct boot_updates updates;
        /* Updates from a registry (UPDATE_CONFIG_FILE), when configured. */
        bool have_update_source;
        struct update_config update;
        sd_event_source *poll_timer;
        uint64_t next_poll_usec;  /* CLOCK_MONOTONIC, 0 when none is set */
        char last_poll[400];      /* what the last poll did, for status */
};

/* /data/kos, opened once beneath /data without following symlinks: -1 when
 * there is no DataFS (or it is not a directory there). */
static int data_kos_fd = -1;

/* Appends a line to /data/kos/events. The file is opened beneath /data/kos
 * without following symlinks and must be a regular file: anything else there
 * (a symlink to /etc/ld.so.preload, a FIFO) was put by someone with the disk,
 * and is removed and replaced by a fresh log. */
static void append_event_line(const char *line) {
        struct stat st;

        if (data_kos_fd < 0)
                return;
        if (fstatat(data_kos_fd, "events", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
                early_log("%s/events is %s, not a regular file: replacing it", DATA_KOS, file_kind(st.st_mode));
                (void)unlinkat(data_kos_fd, "events", 0);
        }
        /* Checked again as it is opened: it may have been swapped meanwhile. */
        int fd = open_regular_beneath(data_kos_fd, "events", O_WRONLY | O_APPEND | O_CREAT, 0644, NULL);
        if (fd < 0)
                return;
        if (kos_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
                early_log("cannot append to %s/events: %m", DATA_KOS);
        close(fd);
}

/* An event: on the console/journal, and appended to /data/kos/events when
 * the DataFS is there, so that a later boot can tell what happened. Names
 * from the DataFS or a drive are passed through escape_name(); the whole
 * text is escaped again, so no byte of it can start a new line. */
static void event(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void event(const char *format, ...) {
        char text[600], clean[700], line[760];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        escape_text(text, clean, sizeof clean);
        early_log("%s", clean);
        snprintf(line, sizeof line, "%lld %s\n", (long long)time(NULL), clean);
        append_event_line(line);
}

static void open_data_kos(void) {
        _cleanup_close_ int data = open("/data", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (data < 0)
                return;
        data_kos_fd = open_beneath(data, "kos", O_RDONLY | O_DIRECTORY, 0);
        if (data_kos_fd < 0 && data_kos_fd != -ENOENT)
                early_log("%s cannot be used (%s): no inbox, no events log", DATA_KOS, strerror(-data_kos_fd));
}

static void set_state(struct node *n, enum state s) {
        n->state = s;
        sd_notifyf(false, "STATUS=%s", state_names[s]);
}

static int read_boot_info(struct node *n) {
        int r = kos_boot_info_read(KOS_BOOT_INFO_FILE, &n->boot);

        if (r < 0)
                return r;
        snprintf(n->name, sizeof n->name, "%s", n->boot.name);
        memcpy(n->id, n->boot.id, KOS_SHA256_LEN);
        kos_hex_encode(n->id, KOS_SHA256_LEN, n->id_hex);
        n->version = (long long)n->boot.version;
        return 0;
}

/* The very ImageFS the Boot Kernel verified: the identity it handed on, which
 * the System Kernel checked and wrote to boot.json. */
static int mount_imagefs(struct node *n) {
        struct early_device dev;
        int r;

        if ((r = early_find_identified_device(n->boot.imagefs_uuid, n->boot.imagefs_partuuid, 5000, &dev)) < 0)
                return r;
        const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
        struct stat mounted, device;
        mkdir(IMAGEFS_MOUNT, 0700);
        /* Restarted by systemd (a crash): the mount of the last run is still
         * there, writable, and a read-only mount of the same superblock now
         * fails (EBUSY). Use it. */
        bool already = stat(IMAGEFS_MOUNT, &mounted) == 0 && stat(dev.path, &device) == 0 &&
                       S_ISBLK(device.st_mode) && mounted.st_dev == device.st_rdev;
        /* The loop devices of the components keep the ImageFS's read-only
         * superblock alive: mount it read-only too (sharing it), then make it
         * writable, which a second read-write mount could not (EBUSY). */
        if (!already && (mount(dev.path, IMAGEFS_MOUNT, dev.type, MS_RDONLY | flags, NULL) < 0 ||
                         mount(NULL, IMAGEFS_MOUNT, NULL, MS_REMOUNT | flags, NULL) < 0))
                return -errno;
        if ((r = kos_imagefs_open(IMAGEFS_MOUNT, &n->img)) < 0)
                return r;
        n->have_imagefs = true;
        return 0;
}

static int systemd_start_unit(struct node *n, const char *unit, const char *mode, char *ret_job, size_t size) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *job;
        int r = sd_bus_call_method(n->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                   "org.freedesktop.systemd1.Manager", "StartUnit", &error, &reply, "ss", unit, mode);
        if (r < 0) {
                event("cannot start %s: %s", unit, error.message ? error.message : strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "o", &job);
        if (r >= 0 && ret_job)
                snprintf(ret_job, size, "%s", job);
        sd_bus_message_unref(reply);
        return r;
}

static void request_reboot(struct node *n, const char *why) {
        event("rebooting: %s", why);
        set_state(n, REBOOTING);
        sync();
        systemd_start_unit(n, "reboot.target", "replace-irreversibly", NULL, 0);
}

static const char *app_active_state(struct node *n) {
        static char state[32];
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *value = NULL;
        char *path = NULL;

        snprintf(state, sizeof state, "unknown");
        if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", APP_TARGET, &path) >= 0 &&
            sd_bus_get_property_string(n->bus, "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Unit",
                                       "ActiveState", &error, &value) >= 0) {
                snprintf(state, sizeof state, "%s", value);
                free(value);
        }
        free(path);
        sd_bus_error_free(&error);
        return state;
}

/* The rollback floor as Status shows it (the TPM is asked here, not on
 * every Status call, so a slow TPM never holds up the API). */
static void refresh_floor(struct node *n) {
        n->have_floor = n->have_imagefs && n->have_keyring && kos_rollback_floor_read(&n->img, &n->ring, &n->floor) >= 0;
}

static int mark_good_now(struct node *n);

/* The boot came up, every hash-tree block was read and the boot is marked
 * good: the Boot Kernel's unconfirmed marker goes (every boot, on trial or
 * not), so the next boot may check "hash-tree" components by their tree
 * again. Left in place, it only costs the next boot a full sha256 of them. */
static void confirm_boot(struct node *n) {
        int r = kos_boot_state_confirm(&n->img, n->id);
        if (r < 0)
                event("cannot confirm the boot of manifest %s (boot-state/<id>.unconfirmed stays; the next boot "
                      "checks its hash-tree components in full): %s", n->name, strerror(-r));
        else if (n->boot.n_hash_tree > 0)
                event("boot of manifest %s confirmed: boot-state/<id>.unconfirmed removed", n->name);
}

static void on_scrub_progress(const struct kos_scrub_report *report, void *userdata) {
        struct node *n = userdata;
        uint64_t now = kos_now_ns();

        n->scrub.report = *report;
        if (now - n->scrub.last_log_ns < SCRUB_LOG_INTERVAL_NS)
                return;
        n->scrub.last_log_ns = now;
        early_log("scrub of the hash-tree components: %llu of %llu bytes", (unsigned long long)report->bytes,
                  (unsigned long long)report->total);
}

/* A corrupt block never gets here: dm-verity restarted the device when the
 * scrub read it, with the marker still on the ImageFS and the boot not yet
 * marked good. Only now is it marked good (tries, floor, active) and then
 * confirmed. */
static void on_scrub_done(int r, const struct kos_scrub_report *report, void *userdata) {
        struct node *n = userdata;

        n->scrub.report = *report;
        if (r < 0 || !kos_scrub_may_confirm(report, n->boot.n_hash_tree)) {
                n->scrub.state = SCRUB_FAILED;
                event("scrub of the hash-tree components failed (%s): %s; the boot is not marked good and "
                      "boot-state/<id>.unconfirmed stays, so the next boot hashes them in full",
                      kos_scrub_result_to_string(report->result),
                      report->error[0] ? report->error : strerror(r < 0 ? -r : EIO));
                return;
        }
        n->scrub.state = SCRUB_DONE;
        event("scrub of the hash-tree components done: %llu bytes of %zu device(s) read through dm-verity without "
              "an error", (unsigned long long)report->bytes, n->boot.n_hash_tree);
        (void)mark_good_now(n);
}

/* The hash-tree components boot.json names for the scrub are exactly those
 * the booted manifest (signed, found by the id the Boot Kernel handed on)
 * marks "hash-tree", in its order: boot.json is the System Kernel's, but a
 * component missing from it would go unscrubbed. 0, or -EBADMSG with why. */
static int check_scrub_list(struct node *n, char *why, size_t why_size) {
        _cleanup_manifest_ struct kos_manifest *m = NULL;
        struct kos_candidate c = {0};
        size_t k = 0;

        if (!n->have_imagefs || !n->have_keyring) {
                snprintf(why, why_size, "the ImageFS or the keyring is unavailable");
                return -ENXIO;
        }
        if (!kos_load_manifest_by_id(&n->img, &n->ring, n->id, &c, &m)) {
                snprintf(why, why_size, "the booted manifest cannot be read: %s", c.detail);
                return -ENOENT;
        }
        bool same = true;
        for (size_t i = 0; i < m->n_components; i++) {
                if (m->components[i].verify != KOS_VERIFY_HASH_TREE)
                        continue;
                same = same && k < n->boot.n_hash_tree &&
                       strcmp(n->boot.hash_tree[k].component, m->components[i].name) == 0;
                k++;
        }
        if (!same || k != n->boot.n_hash_tree) {
                snprintf(why, why_size, "%s names %zu hash-tree device(s), the signed manifest marks %zu",
                         KOS_BOOT_INFO_FILE, n->boot.n_hash_tree, k);
                return -EBADMSG;
        }
        return 0;
}

/* A boot with hash-tree components is marked good only after the scrub has
 * read every one of their blocks. Marking good first would raise the
 * rollback floor and take older manifests out of active on the strength of
 * a tree check alone; a corrupt block found by the scrub afterwards would
 * then leave the next boot (which hashes in full and rejects this
 * manifest) nothing to fall back to. Returns 0 when the scrub runs. */
static int scrub_then_mark_good(struct node *n) {
        struct scrub_callbacks callbacks = {.progress = on_scrub_progress, .done = on_scrub_done, .userdata = n};

        if (n->scrub.state == SCRUB_DONE)
                return mark_good_now(n); /* MarkGood again: one scrub is enough */
        if (n->scrub.state == SCRUB_RUNNING)
                return 0; /* marked good when it is done */
        n->scrub = (struct scrub_job){.state = SCRUB_RUNNING, .last_log_ns = kos_now_ns()};
        char why[sizeof n->scrub.report.error - 16];
        int r = check_scrub_list(n, why, sizeof why);
        if (r >= 0 && (r = scrub_start(n->event, n->boot.hash_tree, n->boot.n_hash_tree, &callbacks)) < 0)
                snprintf(why, sizeof why, "%s", strerror(-r));
        if (r < 0) {
                n->scrub.state = SCRUB_FAILED;
                snprintf(n->scrub.report.error, sizeof n->scrub.report.error, "cannot start: %s", why);
                event("scrub of the hash-tree components cannot start: %s; the boot is not marked good and "
                      "boot-state/<id>.unconfirmed stays, so the next boot hashes them in full", why);
                return r;
        }
        event("scrubbing %zu hash-tree component(s) through dm-verity (idle priority) before marking the boot good",
              n->boot.n_hash_tree);
        return 0;
}

/* Marks the boot good: with hash-tree components only once the scrub read
 * them through (scrub_then_mark_good), else at once. */
static int mark_good(struct node *n) {
        return n->boot.n_hash_tree > 0 ? scrub_then_mark_good(n) : mark_good_now(n);
}

/* kos_mark_good() also raises the rollback floor to this manifest's
 * security_version and takes the manifests below it out of active; then
 * the boot is confirmed. */
static int mark_good_now(struct node *n) {
        struct kos_mark_good_result result;

        int r = n->have_imagefs && n->have_keyring ? kos_mark_good(&n->img, &n->ring, n->id, &result) : -ENXIO;

        if (r == -EBADMSG)
                event("cannot mark manifest %s good: %s", n->name, result.error);
        else if (r < 0)
                event("cannot mark manifest %s good: %s", n->name, strerror(-r));
        else {
                n->marked_good = true;
                refresh_floor(n);
                event("boot of manifest %s marked good", n->name);
                if (result.floor_raised)
                        event("rollback floor raised from %lu to %lu", (unsigned long)result.floor_before,
                              (unsigned long)result.security_version);
                for (size_t i = 0; i < result.n_deactivated; i++)
                        event("manifest %s taken out of active: below the rollback floor %lu", result.deactivated[i],
                              (unsigned long)result.security_version);
                confirm_boot(n);
        }
        return r;
}

/* The app did not come up. A manifest on trial reboots, so that the Boot
 * Kernel counts the try and, once they are used up, falls back by itself. */
static void app_failed(struct node *n, const char *why) {
        struct kos_boot_state st = {0};

        set_state(n, APP_FAILED);
        event("%s: the boot is not marked good", why);
        if (n->have_imagefs && kos_boot_state_read(&n->img, n->id, &st) >= 0 && st.kind == KOS_BOOT_STATE_TRIES)
                request_reboot(n, st.tries_left > 0 ? "manifest on trial failed; trying it again"
                                                    : "manifest on trial failed and has no tries left; the Boot Kernel falls back");
}

static int on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;
        const char *state = app_active_state(n);

        char why[128];

        if (strcmp(state, "active") == 0) {
                set_state(n, RUNNING);
                mark_good(n);
        } else {
                snprintf(why, sizeof why, "%s is %s after %u s", APP_TARGET, state, n->settle);
                app_failed(n, why);
        }
        return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct node *n = userdata;
        const char *job, *unit, *result;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0 || strcmp(job, n->app_job) != 0)
                return 0;
        if (strcmp(result, "done") != 0) {
                char why[128];
                snprintf(why, sizeof why, "starting %s failed (%s)", APP_TARGET, result);
                app_failed(n, why);
                return 0;
        }
        set_state(n, SETTLING);
        event("%s started; marking the boot good if it stays up for %u s", APP_TARGET, n->settle);
        sd_event_add_time_relative(n->event, NULL, CLOCK_MONOTONIC, (uint64_t)n->settle * 1000000, 0, on_settled, n);
        return 0;
}

static int start_app(struct node *n) {
        set_state(n, STARTING_APP);
        event("starting %s", APP_TARGET);
        int r = systemd_start_unit(n, APP_TARGET, "replace", n->app_job, sizeof n->app_job);
        if (r < 0)
                set_state(n, APP_FAILED);
        return r;
}

static int compare_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.kosb names of dir_fd (not dot files), at most BUNDLES_MAX, in name
 * order. Only names are read here; each file is opened (and its type
 * checked) when its turn comes. */
static void list_bundles(struct boot_updates *u) {
        int fd = openat(u->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fd < 0 ? NULL : fdopendir(fd);

        u->count = u->next = 0;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        for (struct dirent *de; (de = readdir(d)) && u->count < BUNDLES_MAX;) {
                size_t len = strlen(de->d_name);
                if (len > 5 && strcmp(de->d_name + len - 5, ".kosb") == 0 && de->d_name[0] != '.')
                        if ((u->names[u->count] = strdup(de->d_name)))
                                u->count++;
        }
        closedir(d);
        qsort(u->names, u->count, sizeof u->names[0], compare_names);
}

static void free_bundle_names(struct boot_updates *u) {
        for (size_t i = 0; i < u->count; i++)
                free(u->names[i]);
        u->count = u->next = 0;
        if (u->dir_fd >= 0)
                close(u->dir_fd);
        u->dir_fd = -1;
}

/* Moves an inbox bundle to processed/ or rejected/ (beneath /data/kos, no
 * symlinks); when that fails it is deleted, never installed again. */
static void move_from_inbox(int inbox_fd, const char *file, bool installed) {
        const char *to = installed ? "processed" : "rejected";

        (void)mkdirat(data_kos_fd, to, 0755);
        _cleanup_close_ int dir = open_beneath(data_kos_fd, to, O_RDONLY | O_DIRECTORY, 0);
        if (dir < 0 || renameat(inbox_fd, file, dir, file) < 0)
                (void)unlinkat(inbox_fd, file, 0);
        (void)syncfs(data_kos_fd);
}

/* A KOS-UPDATE drive: one of update_drive_types, mounted read-only,
 * nosuid, nodev, noexec, nosymfollow. Returns its root's fd, or -1. */
static int mount_update_drive(struct node *n) {
        struct early_device dev;
        char device[256], type[256];
        bool allowed = false;

        if (early_find_device("LABEL=" KOS_LABEL_UPDATE, 0, &dev) < 0)
                return -1;
        escape_name(dev.path, device, sizeof device);
        escape_name(dev.type, type, sizeof type);
        for (size_t i = 0; i < ELEMENTSOF(update_drive_types); i++)
                allowed = allowed || strcmp(dev.type, update_drive_types[i]) == 0;
        if (!allowed) {
                event("update drive %s refused: it holds %s, and only vfat, exfat and ext4 drives are mounted", device,
                      type[0] ? type : "no known filesystem");
                return -1;
        }
        mkdir(UPDATE_MOUNT, 0700);
        if (mount(dev.path, UPDATE_MOUNT, dev.type, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOSYMFOLLOW, NULL) < 0) {
                event("cannot mount the update drive %s (%s): %m", device, type);
                return -1;
        }
        n->updates.drive_mounted = true;
        event("update drive %s found (%s)", device, type);
        int fd = open(UPDATE_MOUNT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -1 : fd;
}

static void continue_boot(struct node *n);
static void start_install(struct node *n, int bundle_fd);

/* The next bundle of the inbox, then of a drive; when none is left, the
 * boot goes on (hold or app). Called again after each install ends. */
static void install_next_bundle(struct node *n) {
        struct boot_updates *u = &n->updates;

        for (;;) {
                if (u->next == u->count) {
                        free_bundle_names(u);
                        if (u->source == FROM_INBOX) {
                                u->source = FROM_DRIVE;
                                if ((u->dir_fd = mount_update_drive(n)) >= 0)
                                        list_bundles(u);
                                continue;
                        }
                        if (u->drive_mounted && umount(UPDATE_MOUNT) == 0)
                                u->drive_mounted = false;
                        continue_boot(n);
                        return;
                }
                const char *file = u->names[u->next++], *kind = "?";
                struct install_job *job = &n->job;
                *job = (struct install_job){.source = u->source};
                snprintf(job->file, sizeof job->file, "%s", file);
                escape_name(file, job->name, sizeof job->name);
                int fd = open_regular_beneath(u->dir_fd, file, O_RDONLY, 0, &kind);
                if (fd == -EPERM) {
                        event("bundle %s refused: it is %s, not a regular file", job->name, kind);
                        if (u->source == FROM_INBOX)
                                move_from_inbox(u->dir_fd, file, false);
                        continue;
                }
                if (fd < 0) {
                        event("cannot open bundle %s: %s", job->name, strerror(-fd));
                        continue;
                }
                set_state(n, INSTALLING);
                event("installing bundle %s%s", u->source == FROM_INBOX ? DATA_KOS "/inbox/" : "", job->name);
                start_install(n, fd);
                return;
        }
}

/* ---- updates from a registry ---- */

static void schedule_poll(struct node *n);
static void on_install_done(int r, const struct kos_bundle_result *result, void *userdata);

static void on_install_progress(uint64_t done, uint64_t total, void *userdata);

/* Starts a pull in the installer child (kos-node-pull): the loop goes on. */
static int start_pull(struct node *n, struct varlink_connection *caller) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};

        n->job = (struct install_job){.source = FROM_REGISTRY, .caller = caller, .last_event_ns = kos_now_ns()};
        escape_name(n->update.registry, n->job.name, sizeof n->job.name);
        event("checking for an update at %s", n->job.name);
        int r = installer_start_pull(n->event, IMAGEFS_MOUNT, n->id, &callbacks);
        if (r < 0) {
                snprintf(n->last_poll, sizeof n->last_poll, "could not start: %s", strerror(-r));
                event("update check failed to start: %s", strerror(-r));
                schedule_poll(n);
                return r;
        }
        n->job.running = true;
        return 0;
}

/* A pull that installed a new manifest reboots into it, as a bundle from the
 * inbox does; anything else waits for the next poll. */
static void on_pull_done(struct node *n, int r, const struct kos_bundle_result *result) {
        struct install_job *job = &n->job;
        bool changed = r >= 0 && !result->already_active;

        if (r >= 0 && result->already_active)
                snprintf(n->last_poll, sizeof n->last_poll, "up to date: %s is installed and first in active", result->name);
        else if (r >= 0)
                snprintf(n->last_poll, sizeof n->last_poll,
                         "installed %s: fetched %u of %u components, %llu of %llu bytes", result->name, result->added,
                         result->components, (unsigned long long)(result->bytes_added - result->resumed_bytes),
                         (unsigned long long)result->components_bytes);
        else
                snprintf(n->last_poll, sizeof n->last_poll, "%s: %s", r == -EBADMSG ? "refused" : "failed",
                         r == -ECHILD ? "the pull process died or could not run " KOS_NODE_PULL_PROGRAM
                                      : result->error[0] ? result->error : strerror(-r));
        event("update from %s: %s", job->name, n->last_poll);
        if (job->caller)
                varlink_connection_reply(job->caller,
                                         r < 0 ? varlink_error(r == -EBADMSG ? "io.kos.Node.BundleRefused" : "io.kos.Node.Failed",
                                                               n->last_poll)
                                               : json_pack("{s:{s:s, s:b, s:i, s:I}}", "parameters", "manifest", result->name,
                                                           "changed", changed, "components_fetched", (int)result->added,
                                                           "bytes_fetched",
                                                           (json_int_t)(result->bytes_added - result->resumed_bytes)));
        job->caller = NULL;
        if (changed) {
                request_reboot(n, "to boot the new manifest");
                return;
        }
        schedule_poll(n);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        struct node *n = userdata;

        n->next_poll_usec = 0;
        if (n->job.running || n->state == REBOOTING || n->state == INSTALLING) {
                schedule_poll(n); /* an install runs: its turn comes later */
                return 0;
        }
        (void)start_pull(n, NULL); /* on failure it has scheduled the next */
        return 0;
}

/* The next poll: interval plus a random part of jitter, so a fleet booted
 * at once does not come back at once. */
static void schedule_poll(struct node *n) {
        uint32_t random = 0;
        uint64_t now;

        if (!n->have_update_source || n->state == REBOOTING)
                return;
        if (getrandom(&random, sizeof random, GRND_NONBLOCK) != sizeof random)
                random = (uint32_t)kos_now_ns();
        uint64_t delay = (uint64_t)n->update.interval + (n->update.jitter ? random % (n->update.jitter + 1u) : 0);
        if (sd_event_now(n->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        n->next_poll_usec = now + delay * 1000000ULL;
        n->poll_timer = sd_event_source_disable_unref(n->poll_timer);
        if (sd_event_add_time(n->event, &n->poll_timer, CLOCK_MONOTONIC, n->next_poll_usec, 1000000ULL, on_poll, n) < 0) {
                n->next_poll_usec = 0;
                event("cannot arm the update poll timer");
        }
}

/* UPDATE_CONFIG_FILE, when the root has one (it is part of the signed root,
 * trusted like the keyring beside it). */
static void load_update_source(struct node *n) {
        _cleanup_free_ char *text = NULL;
        char why[256];
        size_t len;
        int r = kos_read_file_at(AT_FDCWD, UPDATE_CONFIG_FILE, UPDATE_CONFIG_MAX, &text, &len);

        if (r == -ENOENT)
                return;
        if (r < 0) {
                event("cannot read %s: %s; no updates from a registry", UPDATE_CONFIG_FILE, strerror(-r));
                return;
        }
        if (update_config_parse(text, len, &n->update, why, sizeof why) < 0) {
                event("%s ignored: %s", UPDATE_CONFIG_FILE, why);
                return;
        }
        n->have_update_source = true;
        char name[300];
        escape_name(n->update.registry, name, sizeof name);
        event("update source %s, polled every %u s (+ up to %u s)", name, n->update.interval, n->update.jitter);
}

static void on_install_progress(uint64_t done, uint64_t total, void *userdata) {
        struct node *n = userdata;
        uint64_t now = kos_now_ns();

        n->job.done = done;
        n->job.total = total;
        if (now - n->job.last_event_ns < PROGRESS_EVENT_INTERVAL_NS)
                return;
        n->job.last_event_ns = now;
        event("installing bundle %s: %llu of %llu bytes", n->job.name, (unsigned long long)done, (unsigned long long)total);
}

static const char *install_error(int r, const struct kos_bundle_result *result) {
        if (r == -EBADMSG)
                return result->error;
        if (r == -ECHILD)
                return "the installer process died";
        return strerror(-r);
}

/* The end of an install: logged, the inbox file moved, the API caller
 * answered; a new manifest from the inbox or a drive reboots into it. */
static void on_install_done(int r, const struct kos_bundle_result *result, void *userdata) {
        struct node *n = userdata;
        struct install_job *job = &n->job;

        job->running = false;
        if (r >= 0 && result->already_active)
                event("manifest %s of %s is installed and active already", result->name, job->name);
        else if (r >= 0)
                event("installed manifest %s from %s%s: %u component(s) added, %u present", result->name, job->name,
                      job->source == FROM_API ? " through the API" : "", result->added, result->skipped);
        if (r >= 0 && result->warning[0])
                event("installed manifest %s, but cleanup failed: %s", result->name, result->warning);
        else if (r < 0 && job->source != FROM_REGISTRY)
                event("bundle %s refused: %s", job->name, install_error(r, result));
        if (job->source == FROM_REGISTRY) {
                on_pull_done(n, r, result);
                return;
        }
        if (job->source == FROM_API) {
                varlink_connection_reply(job->caller, r < 0 ? varlink_error("io.kos.Node.BundleRefused", install_error(r, result))
                                                            : json_pack("{s:{}}", "parameters"));
                return;
        }
        /* From the inbox, a failure that is not the bundle's fault (no space,
         * I/O) keeps it for the next boot. */
        if (job->source == FROM_INBOX && (r >= 0 || r == -EBADMSG))
                move_from_inbox(n->updates.dir_fd, job->file, r >= 0);
        if (r >= 0 && !result->already_active) {
                free_bundle_names(&n->updates);
                if (n->updates.drive_mounted)
                        umount(UPDATE_MOUNT);
                request_reboot(n, "to boot the new manifest");
                return;
        }
        install_next_bundle(n);
}

static void start_install(struct node *n, int bundle_fd) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};
        int r = installer_start(n->event, &n->img, &n->ring, n->id, bundle_fd, &callbacks);

        n->job.running = r >= 0;
        n->job.last_event_ns = kos_now_ns();
        if (r < 0)
                on_install_done(r, &(struct kos_bundle_result){0}, n);
}

/* The inbox on the DataFS, then a drive labelled KOS-UPDATE if one is there. */
static void process_updates(struct node *n) {
        n->updates = (struct boot_updates){.source = FROM_INBOX, .dir_fd = -1};
        if (data_kos_fd >= 0 && (n->updates.dir_fd = open_beneath(data_kos_fd, "inbox", O_RDONLY | O_DIRECTORY, 0)) >= 0)
                list_bundles(&n->updates);
        install_next_bundle(n);
}

/* ---- the Varlink API ---- */

static json_t *status_json(struct node *n) {
        struct kos_active_list active = {0};
        struct kos_boot_state st = {0};
        json_t *manifests = json_array(), *fallback = json_null();

        if (n->have_imagefs && kos_active_read(&n->img, &active) >= 0) {
                for (size_t i = 0; i < active.n; i++) {
                        char state[32] = "none";
                        uint8_t id[KOS_SHA256_LEN];
                        if (!active.entries[i].name_valid)
                                continue;
                        if (kos_imagefs_manifest_id(&n->img, active.entries[i].name, id) >= 0) {
                                if (kos_boot_state_read(&n->img, id, &st) >= 0)
                                        snprintf(state, sizeof state, st.kind == KOS_BOOT_STATE_GOOD ? "good"
                                                                      : st.kind == KOS_BOOT_STATE_TRIES ? "tries-%u" : "none",
                                                 st.tries_left);
                        }
                        bool booted = strcmp(active.entries[i].name, n->name) == 0;
                        json_array_append_new(manifests, json_pack("{s:s, s:s, s:b}", "name", active.entries[i].name,
                                                                   "boot_state", state, "booted", booted));
                        if (i == 0 && !booted) {
                                char text[300];
                                snprintf(text, sizeof text, "%s is first in active but %s was booted%s",
                                         active.entries[0].name, n->name,
                                         strcmp(state, "tries-0") == 0 ? ": its tries were used up and it was never marked good, so the Boot Kernel fell back" : "");
                                json_decref(fallback);
                                fallback = json_string(text);
                        }
                }
        }
        json_t *install = n->job.running ? json_pack("{s:s, s:I, s:I}", "bundle", n->job.name, "done_bytes",
                                                     (json_int_t)n->job.done, "total_bytes", (json_int_t)n->job.total)
                                         : json_null();
        json_t *floor = n->have_floor ? json_pack("{s:I, s:s, s:s?}", "value", (json_int_t)n->floor.value, "source",
                                                  kos_floor_source_to_string(n->floor.source), "warning",
                                                  n->floor.warning[0] ? n->floor.warning : NULL)
                                      : json_null();
        json_t *scrub = n->boot.n_hash_tree == 0
                                ? json_null()
                                : json_pack("{s:s, s:I, s:I, s:s?}", "state", scrub_state_names[n->scrub.state], "bytes",
                                            (json_int_t)n->scrub.report.bytes, "total",
                                            (json_int_t)n->scrub.report.total, "error",
                                            n->scrub.report.error[0] ? n->scrub.report.error : NULL);
        json_t *update = json_null();
        if (n->have_update_source) {
                uint64_t now = 0;
                (void)sd_event_now(n->event, CLOCK_MONOTONIC, &now);
                update = json_pack("{s:s, s:o, s:o}", "registry", n->update.registry, "last",
                                   n->last_poll[0] ? json_string(n->last_poll) : json_null(), "next_poll_in_s",
                                   n->next_poll_usec > now ? json_integer((json_int_t)((n->next_poll_usec - now) / 1000000))
                                                           : json_null());
        }
        return json_pack("{s:s, s:{s:s, s:s, s:I}, s:b, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "state",
                         state_names[n->state], "booted", "name", n->name, "id", n->id_hex, "version",
                         (json_int_t)n->version, "marked_good", n->marked_good, "app",
                         n->bus ? app_active_state(n) : "unknown", "fallback", fallback, "manifests", manifests,
                         "install", install, "scrub", scrub, "rollback_floor", floor, "update", update);
}

#define reply_error varlink_error

/* Install through the API: the reply comes when the installer is done
 * (NULL here), so the loop goes on meanwhile. The path comes from root and
 * may be anywhere, but only a regular file is read, and opening does not wait. */
static json_t *api_install(struct node *n, struct varlink_connection *c, const char *path) {
        struct installer_callbacks callbacks = {.progress = on_install_progress, .done = on_install_done, .userdata = n};
        struct stat st;

        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return reply_error("io.kos.Node.BundleRefused", strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return reply_error("io.kos.Node.BundleRefused", "not a regular file");
        }
        n->job = (struct install_job){.source = FROM_API, .caller = c, .last_event_ns = kos_now_ns()};
        escape_name(path, n->job.name, sizeof n->job.name);
        event("installing bundle %s through the API", n->job.name);
        int r = installer_start(n->event, &n->img, &n->ring, n->id, fd, &callbacks);
        if (r < 0)
                return reply_error("io.kos.Node.Failed", strerror(-r));
        n->job.running = true;
        return NULL;
}

static json_t *api_activate(struct node *n, const char *name) {
        struct kos_active_list list;
        char json_name[KOS_NAME_MAX + 8], sig[KOS_NAME_MAX + 12];

        if (!kos_name_is_valid(name))
                return reply_error("org.varlink.service.InvalidParameter", "name");
        kos_manifest_file_names(name, json_name, sig);
        if (faccessat(n->img.manifests_fd, json_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                return reply_error("io.kos.Node.NoSuchManifest", name);
        if (kos_active_read(&n->img, &list) < 0)
                list.n = 0; /* a missing or unreadable list starts afresh */
        if (kos_active_insert(&list, name, true) < 0 || kos_active_write(&n->img, &list) < 0)
                return reply_error("io.kos.Node.Failed", "cannot write active");
        event("manifest %s activated first through the API", name);
        return json_pack("{s:{}}", "parameters");
}

static json_t *dispatch(struct node *n, struct varlink_connection *c, const char *method, json_t *parameters) {
        bool root = varlink_connection_uid(c) == 0;

        if (strcmp(method, "io.kos.Node.Status") == 0)
                return json_pack("{s:o}", "parameters", status_json(n));
        if (!root)
                return reply_error("io.kos.Node.PermissionDenied", "only root may call this method");
        if (strcmp(method, "io.kos.Node.Hold") == 0) {
                if (n->state != STARTING && n->state != HOLDING && n->state != INSTALLING)
                        return reply_error("io.kos.Node.WrongState", "the app was started already");
                n->hold = true;
                if (n->state != INSTALLING) /* else continue_boot() holds once the installs are done */
                        set_state(n, HOLDING);
                event("holding: the app waits for start-app");
        } else if (strcmp(method, "io.kos.Node.StartApp") == 0) {
                if (n->state != HOLDING && n->state != APP_FAILED)
                        return reply_error("io.kos.Node.WrongState", "the app is not held");
                start_app(n);
        } else if (strcmp(method, "io.kos.Node.MarkGood") == 0) {
                if (mark_good(n) < 0)
                        return reply_error("io.kos.Node.Failed", "cannot mark the boot good");
        } else if (strcmp(method, "io.kos.Node.CheckUpdate") == 0) {
                if (!n->have_update_source)
                        return reply_error("io.kos.Node.NoUpdateSource", "no usable " UPDATE_CONFIG_FILE);
                if (!n->have_imagefs || !n->have_keyring)
                        return reply_error("io.kos.Node.Failed", "the ImageFS or the keyring is unavailable");
                if (n->job.running || n->state == INSTALLING || n->state == REBOOTING)
                        return reply_error("io.kos.Node.WrongState", "an install runs, or the system reboots");
                n->poll_timer = sd_event_source_disable_unref(n->poll_timer);
                n->next_poll_usec = 0;
                if (start_pull(n, c) < 0)
                        return reply_error("io.kos.Node.Failed", n->last_poll);
                return NULL; /* answered when the pull is done */
        } else if (strcmp(method, "io.kos.Node.Reboot") == 0) {
                request_reboot(n, "asked through the API");
        } else if (strcmp(method, "io.kos.Node.Activate") == 0 || strcmp(method, "io.kos.Node.Install") == 0) {
                const char *arg = NULL;
                bool install = method[12] == 'I';
                if (json_unpack(parameters, "{s:s}", install ? "path" : "name", &arg) < 0)
                        return reply_error("org.varlink.service.InvalidParameter", install ? "path" : "name");
                if (!n->have_imagefs)
                        return reply_error("io.kos.Node.Failed", "the ImageFS is not mounted");
                if (n->job.running) /* both write active */
                        return reply_error("io.kos.Node.WrongState", "an install is running");
                return install ? api_install(n, c, arg) : api_activate(n, arg);
        } else
                return reply_error("org.varlink.service.MethodNotFound", method);
        return json_pack("{s:{}}", "parameters");
}

static json_t *on_call(struct varlink_connection *c, const char *method, json_t *parameters, void *userdata) {
        return dispatch(userdata, c, method, parameters);
}

static int connect_systemd(struct node *n) {
        int r;

        /* systemd's private socket: works with no D-Bus daemon running. */
        if ((r = sd_bus_new(&n->bus)) < 0 || (r = sd_bus_set_address(n->bus, "unix:path=/run/systemd/private")) < 0 ||
            (r = sd_bus_start(n->bus)) < 0)
                return r;
        if ((r = sd_bus_attach_event(n->bus, n->event, 0)) < 0)
                return r;
        r = sd_bus_match_signal(n->bus, NULL, NULL, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                "JobRemoved", on_job_removed, n);
        if (r < 0)
                return r;
        return sd_bus_call_method(n->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                  "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, NULL);
}

/* After the updates: hold, or start the app; polling the registry starts. */
static void continue_boot(struct node *n) {
        if (n->have_imagefs && n->have_keyring)
                schedule_poll(n);
        if (n->hold) {
                set_state(n, HOLDING);
                event("holding: the app waits for start-app");
        } else if (early_cmdline_get("kos.hold")) {
                n->hold = true;
                set_state(n, HOLDING);
                event("kos.hold: the app waits for start-app");
        } else
                start_app(n);
}

static const char usage[] =
        "Usage: kos-node-manager [--help]\n\n"
        "KOS Node Manager, run by systemd (kos-node-manager.service) on a device booted by KOS:\n"
        "installs update bundles (/data/kos/inbox/, KOS-UPDATE drives) and pulls from\n"
        "/etc/kos/update.conf, starts kos-app.target, marks the boot good, and answers\n"
        "'kos node' on /run/kos/node.sock. No options; kos.hold and kos.settle=SECONDS on the\n"
        "kernel command line change what it does. See kos-node-manager(8).\n";

int main(int argc, char **argv) {
        struct node n = {.img = KOS_IMAGEFS_NULL, .settle = 30, .updates.dir_fd = -1};
        struct varlink_server *server;
        char error[512];
        int r;

        if (argc > 1) { /* systemd starts it without arguments */
                bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
                fputs(usage, help ? stdout : stderr);
                return help ? 0 : 2;
        }
        early_log_init("kos-node");
        early_cmdline_load();
        open_data_kos();
        n.settle = early_cmdline_seconds("kos.settle", n.settle);
        if ((r = read_boot_info(&n)) < 0)
                early_log("cannot read %s: %s; was this system booted by KOS?", KOS_BOOT_INFO_FILE, strerror(-r));
        else if ((r = mount_imagefs(&n)) < 0)
                event("cannot mount the ImageFS: %s; updates and mark-good are unavailable", strerror(-r));
        if (kos_keyring_load(KOS_KEYRING_DIR, &n.ring, error, sizeof error) < 0)
                event("%s; bundles cannot be installed", error);
        else
                n.have_keyring = true;
        refresh_floor(&n);
        if ((r = sd_event_default(&n.event)) < 0 || (r = sd_event_set_watchdog(n.event, true)) < 0 ||
            (r = connect_systemd(&n)) < 0 || (r = varlink_server_new(n.event, SOCKET_PATH, on_call, &n, &server)) < 0) {
                early_log("cannot set up: %s", strerror(-r));
                return 1;
        }
        event("Node Manager started on manifest %s version %lld", n.name, n.version);
        load_update_source(&n);
        sd_notify(false, "READY=1");
        /* Installs run in a child process while this loop keeps going. */
        if (n.have_imagefs && n.have_keyring)
                process_updates(&n);
        else
                continue_boot(&n);
        r = sd_event_loop(n.event);
        return r < 0 ? 1 : 0;
}
