/* SPDX-License-Identifier: MIT */
/* What every notifier backend shares. */
#include <errno.h>
#include <stddef.h>

#include "notifier.h"
#include "util.h"

APQ_EXPORT void apq_notifier_free(struct apq_notifier *n)
{
	if (n)
		n->ops->destroy(n);
}

APQ_EXPORT int apq_notifier_ack(struct apq_notifier *n)
{
	if (!n)
		return -EINVAL;
	return n->ops->ack ? n->ops->ack(n) : 0;
}
