/* SPDX-License-Identifier: MIT */
/* A forked child of Node Manager that reports fixed-size records over a
 * pipe, heard on an io event source of the parent's loop: the installer
 * (installer.c) and the scrub (scrub-child.c). The child never outlives
 * Node Manager (PR_SET_PDEATHSIG; systemd also kills the whole cgroup). */
#pragma once

#include <sys/types.h>
#include <systemd/sd-event.h>

struct child_process {
        pid_t pid;
        int fd; /* the read end of the pipe, non-blocking */
        sd_event_source *source;
};

/* Forks a child that runs run(arg, report_fd) and must not return (it ends
 * with _exit()); the parent gets on_report(..., userdata) on c->fd. */
int child_process_start(sd_event *event, struct child_process *c, void (*run)(void *arg, int report_fd), void *arg,
                        sd_event_io_handler_t on_report, void *userdata);

/* After the final record, or the pipe closed without one: the child is
 * exiting (or died), so the wait is short. Then the source and the pipe go. */
void child_process_reap(struct child_process *c);
