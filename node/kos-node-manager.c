/* SPDX-License-Identifier: MIT */
/* kos-node-manager: the first KOS service systemd starts (Type=notify, with a
 * watchdog). It
 *   - installs update bundles staged in /data/kos/inbox/ (or on a partition
 *     labelled KOS-UPDATE) and reboots into them: the boot is intercepted;
 *   - holds, with kos.hold on the kernel command line or through its API,
 *     instead of starting the app;
 *   - otherwise asks systemd (over its private D-Bus socket, sd-bus) to start
 *     kos-app.target, follows the job, and marks the boot good once the
 *     target and every unit of it are still up kos.settle seconds later
 *     (default 30; node/app.c says what "up" is);
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
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "early.h"
#include "node.h"

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
        struct kos_error error = KOS_ERROR_NULL;
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
        if (kos_keyring_load(KOS_KEYRING_DIR, &n.ring, &error) < 0)
                event("%s; bundles cannot be installed", error.msg);
        else
                n.have_keyring = true;
        refresh_floor(&n);
        boot_slots_refresh(&n);
        if ((r = sd_event_default(&n.event)) < 0 || (r = sd_event_set_watchdog(n.event, true)) < 0 ||
            (r = connect_systemd(&n)) < 0 || (r = varlink_server_new(n.event, SOCKET_PATH, node_api_call, &n, &server)) < 0) {
                early_log("cannot set up: %s", strerror(-r));
                return 1;
        }
        event("Node Manager started on manifest %s version %lld", n.name, n.version);
        if (n.boot.data_state[0])
                event("datafs: %s%s%s%s", n.boot.data_state, n.boot.data_encryption[0] ? " (" : "",
                      n.boot.data_encryption, n.boot.data_encryption[0] ? ")" : "");
        if (n.boot.data_reason[0])
                event("datafs: %s: %s", n.boot.data_state, n.boot.data_reason);
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
