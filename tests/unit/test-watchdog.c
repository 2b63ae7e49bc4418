/* SPDX-License-Identifier: MIT */
/* early/watchdog.c on a stand-in for PCI sysfs: regular files for a
 * device's vendor, device, config, resource and resource0 (BAR 0), whose
 * final bytes show what the arming wrote. The register sequence itself
 * (unlock, write, reload) runs against QEMU's i6300esb in
 * vm:new_boot_kernel_that_hangs_is_reset_by_the_watchdog_and_falls_back_to_the_good_slot. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "early.h"
#include "test.h"

static int put(const char *dir, const char *name, const void *data, size_t size) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, data, size);
        close(fd);
        return n == (ssize_t)size ? 0 : -EIO;
}

static int get(const char *dir, const char *name, void *data, size_t size) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, data, size);
        close(fd);
        return n == (ssize_t)size ? 0 : -EIO;
}

/* A device at devices/NAME with the given ids and BAR 0 at 0x...f080 (not
 * page aligned, as a 16-byte BAR often is). */
static int fake_device(const char *devices, const char *name, const char *vendor, const char *device, char *ret_dir,
                       size_t size) {
        static uint8_t config[256], bar[4096];
        const char *resource = "0x00000000c000f080 0x00000000c000f08f 0x0000000000040200\n";
        snprintf(ret_dir, size, "%s/%s", devices, name);
        if (mkdir(devices, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (mkdir(ret_dir, 0700) < 0)
                return -errno;
        int r;
        if ((r = put(ret_dir, "vendor", vendor, strlen(vendor))) < 0 || (r = put(ret_dir, "device", device, strlen(device))) < 0 ||
            (r = put(ret_dir, "config", config, sizeof config)) < 0 ||
            (r = put(ret_dir, "resource", resource, strlen(resource))) < 0 || (r = put(ret_dir, "resource0", bar, sizeof bar)) < 0)
                return r;
        return 0;
}

TEST(watchdog_is_armed_locked_with_both_stages_and_the_memory_decoding_on) {
        char devices[512], dir[600], name[64] = "";
        uint8_t config[256], bar[4096];
        uint32_t timer1, timer2;
        uint16_t command, esb_config, reload;

        snprintf(devices, sizeof devices, "%s/devices", test_tmpdir());
        CHECK(fake_device(devices, "0000:00:02.0", "0x1af4\n", "0x1001\n", dir, sizeof dir) == 0);
        CHECK(fake_device(devices, "0000:00:03.0", "0x8086\n", "0x25ab\n", dir, sizeof dir) == 0);
        CHECK(early_watchdog_arm_at(devices, 20, name, sizeof name) == 0);
        CHECK(strcmp(name, "0000:00:03.0") == 0);
        CHECK(get(dir, "config", config, sizeof config) == 0);
        CHECK(get(dir, "resource0", bar, sizeof bar) == 0);
        memcpy(&command, config + 0x04, 2);
        memcpy(&esb_config, config + 0x60, 2);
        CHECK(command & 0x2);        /* memory space decoding */
        CHECK(esb_config == 0x0003); /* reset on timeout, 1 kHz, no interrupt */
        CHECK(config[0x68] == 0x03); /* enabled and locked */
        memcpy(&timer1, bar + 0x80, 4);
        memcpy(&timer2, bar + 0x84, 4);
        memcpy(&reload, bar + 0x8c, 2);
        CHECK(timer1 == 20u << 9 && timer2 == 20u << 9);
        CHECK(reload == 0x100); /* the last write: the reload after the unlock */
}

TEST(watchdog_without_the_device_or_with_a_timeout_out_of_range_arms_nothing) {
        char devices[512], dir[600], name[64] = "";
        uint8_t config[256];

        snprintf(devices, sizeof devices, "%s/devices", test_tmpdir());
        CHECK(fake_device(devices, "0000:00:02.0", "0x1af4\n", "0x1001\n", dir, sizeof dir) == 0);
        CHECK(early_watchdog_arm_at(devices, 20, name, sizeof name) == -ENODEV);
        CHECK(fake_device(devices, "0000:00:03.0", "0x8086\n", "0x25ab\n", dir, sizeof dir) == 0);
        CHECK(early_watchdog_arm_at(devices, 1, name, sizeof name) == -ERANGE);
        CHECK(early_watchdog_arm_at(devices, 2048, name, sizeof name) == -ERANGE);
        CHECK(get(dir, "config", config, sizeof config) == 0);
        CHECK(config[0x68] == 0 && config[0x04] == 0);
}
