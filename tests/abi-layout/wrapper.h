/* bindgen input: the host KVM user-space ABI. */
#include <linux/kvm.h>
