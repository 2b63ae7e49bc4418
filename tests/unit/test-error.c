/* SPDX-License-Identifier: MIT */
/* struct kos_error (lib/boot/kos-error.h): the rules its header writes down. */
#include <string.h>

#include "kos-error.h"
#include "test.h"

TEST(error_set_returns_the_negative_code_whatever_its_sign) {
        struct kos_error e = KOS_ERROR_NULL;

        CHECK(kos_error_set(&e, -EBADMSG, "line %d: %s", 3, "no") == -EBADMSG);
        CHECK(e.code == -EBADMSG && strcmp(e.msg, "line 3: no") == 0);
        CHECK(kos_error_set(&e, ENOENT, "gone") == -ENOENT); /* an errno value as it stands */
        CHECK(e.code == -ENOENT);
        CHECK(kos_error_set(&e, 0, "zero is no failure") == -EIO); /* a failure never reads as success */
        CHECK(e.code == -EIO);
        CHECK(kos_error_set(NULL, -EPERM, "nobody listens") == -EPERM);
}

TEST(error_keeps_the_last_message_and_prefix_keeps_the_inner_one) {
        struct kos_error e = KOS_ERROR_NULL;

        kos_error_set(&e, -ENOENT, "inner");
        CHECK(kos_error_set(&e, -EBADMSG, "outer") == -EBADMSG);
        CHECK(strcmp(e.msg, "outer") == 0); /* the last set wins */
        CHECK(kos_error_prefix(&e, "%s.sig: ", "base") == -EBADMSG);
        CHECK(strcmp(e.msg, "base.sig: outer") == 0 && e.code == -EBADMSG);
        kos_error_clear(&e);
        CHECK(e.code == 0 && e.msg[0] == '\0');
        CHECK(kos_error_prefix(&e, "x: ") == -EIO); /* nothing recorded: still a failure */
        CHECK(kos_error_prefix(NULL, "x: ") == -EIO);
}

TEST(error_truncates_safely_and_leaves_errno_alone) {
        struct kos_error e = KOS_ERROR_NULL;
        char long_text[3 * KOS_ERROR_MSG_MAX];

        memset(long_text, 'a', sizeof long_text - 1);
        long_text[sizeof long_text - 1] = '\0';
        memset(e.msg, 'z', sizeof e.msg);
        errno = EAGAIN;
        CHECK(kos_error_set(&e, -E2BIG, "%s", long_text) == -E2BIG);
        CHECK(errno == EAGAIN);
        CHECK(strlen(e.msg) == KOS_ERROR_MSG_MAX - 1 && e.msg[KOS_ERROR_MSG_MAX - 1] == '\0');
        /* A prefix longer than the room: cut, terminated, the code kept. */
        CHECK(kos_error_prefix(&e, "%s: ", long_text) == -E2BIG);
        CHECK(strlen(e.msg) == KOS_ERROR_MSG_MAX - 1 && e.msg[0] == 'a');
        /* A short prefix before a full message: the prefix stays, the tail goes. */
        kos_error_set(&e, -E2BIG, "%s", long_text);
        CHECK(kos_error_prefix(&e, "p: ") == -E2BIG && errno == EAGAIN);
        CHECK(strncmp(e.msg, "p: aaa", 6) == 0 && strlen(e.msg) == KOS_ERROR_MSG_MAX - 1);
}
