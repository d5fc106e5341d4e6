/* clock.h - the time for timeouts, deadlines and schedules: a clock that
 * never steps back (NTP, an admin's date). */
#ifndef MAILPULL_CLOCK_H
#define MAILPULL_CLOCK_H

/* Milliseconds of CLOCK_MONOTONIC. */
long long mono_ms(void);

#endif
