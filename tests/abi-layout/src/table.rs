// The single list of what is checked. Included twice: by build.rs (which
// turns it into C probe programs) and by the test (which turns it into
// `size_of`/`align_of`/`offset_of!` and constant reads). Each side defines
// the `abi_table!` macro before including this file.
//
// Struct entry: `RustPath = C { field, rust_field => c_member, ... }` where C
// is either a C struct tag (`kvm_regs`, checked against bindgen's type too)
// or a C type-name string (`"MEMBER(struct kvm_run, io)"`, for anonymous
// nested structs and unions). `MEMBER(T, m)` is `__typeof__(((T *)0)->m)`.
// Explicit `_padN` fields are not listed: they have no C name.
//
// Sections `host`, `arm64`, `ppc`, `s390x` are checked against the host
// header and against the Debian cross headers (when installed), resp.

abi_table! {
    host_structs: [
        // ---- generic (abi::) ----
        abi::KvmMemoryRegion = kvm_memory_region { slot, flags, guest_phys_addr, memory_size },
        abi::KvmUserspaceMemoryRegion = kvm_userspace_memory_region {
            slot, flags, guest_phys_addr, memory_size, userspace_addr
        },
        abi::KvmUserspaceMemoryRegion2 = "struct kvm_userspace_memory_region2" {
            slot, flags, guest_phys_addr, memory_size, userspace_addr, guest_memfd_offset,
            guest_memfd, pad1, pad2
        },
        abi::KvmMemoryAttributes = "struct kvm_memory_attributes" { address, size, attributes, flags },
        abi::KvmCreateGuestMemfd = "struct kvm_create_guest_memfd" { size, flags, reserved },
        abi::KvmDirtyLog = kvm_dirty_log { slot, padding1, dirty_bitmap },
        abi::KvmClearDirtyLog = kvm_clear_dirty_log { slot, num_pages, first_page, dirty_bitmap },
        abi::KvmDirtyGfn = kvm_dirty_gfn { flags, slot, offset },
        abi::KvmIrqLevel = kvm_irq_level { irq, level },
        abi::KvmIrqchip = kvm_irqchip { chip_id, pad, chip },
        abi::KvmIrqchipChip = "MEMBER(struct kvm_irqchip, chip)" {},
        abi::KvmInterrupt = kvm_interrupt { irq },
        abi::KvmIrqfd = kvm_irqfd { fd, gsi, flags, resamplefd, pad },
        abi::KvmMsi = kvm_msi { address_lo, address_hi, data, flags, devid, pad },
        abi::KvmIrqRoutingIrqchip = kvm_irq_routing_irqchip { irqchip, pin },
        abi::KvmIrqRoutingMsi = kvm_irq_routing_msi { address_lo, address_hi, data, devid },
        abi::KvmIrqRoutingS390Adapter = kvm_irq_routing_s390_adapter {
            ind_addr, summary_addr, ind_offset, summary_offset, adapter_id
        },
        abi::KvmIrqRoutingHvSint = kvm_irq_routing_hv_sint { vcpu, sint },
        abi::KvmIrqRoutingXenEvtchn = kvm_irq_routing_xen_evtchn { port, vcpu, priority },
        abi::KvmIrqRoutingEntry = kvm_irq_routing_entry { gsi, r#type, flags, pad, u },
        abi::KvmIrqRoutingEntryU = "MEMBER(struct kvm_irq_routing_entry, u)" {},
        abi::KvmIrqRouting = kvm_irq_routing { nr, flags },
        abi::KvmIoeventfd = kvm_ioeventfd { datamatch, addr, len, fd, flags, pad },
        abi::KvmCoalescedMmioZone = kvm_coalesced_mmio_zone { addr, size, pio },
        abi::KvmCoalescedMmio = kvm_coalesced_mmio { phys_addr, len, pio, data },
        abi::KvmCoalescedMmioRing = kvm_coalesced_mmio_ring { first, last },
        abi::KvmTranslation = kvm_translation {
            linear_address, physical_address, valid, writeable, usermode, pad
        },
        abi::KvmSignalMask = kvm_signal_mask { len },
        abi::KvmMpState = kvm_mp_state { mp_state },
        abi::KvmGuestDebug = kvm_guest_debug { control, pad, arch },
        abi::KvmEnableCap = kvm_enable_cap { cap, flags, args, pad },
        abi::KvmClockData = kvm_clock_data { clock, flags, pad0, realtime, host_tsc, pad },
        abi::KvmCreateDevice = kvm_create_device { r#type, fd, flags },
        abi::KvmDeviceAttr = kvm_device_attr { flags, group, attr, addr },
        abi::KvmVfioSpaprTce = kvm_vfio_spapr_tce { groupfd, tablefd },
        abi::KvmArmDeviceAddr = kvm_arm_device_addr { id, addr },
        abi::KvmOneReg = kvm_one_reg { id, addr },
        abi::KvmRegList = kvm_reg_list { n },
        abi::KvmConfigTlb = kvm_config_tlb { params, array, mmu_type, array_len },
        abi::KvmDirtyTlb = kvm_dirty_tlb { bitmap, num_dirty },
        abi::KvmEncRegion = kvm_enc_region { addr, size },
        abi::KvmHypervEventfd = kvm_hyperv_eventfd { conn_id, fd, flags, padding },
        abi::KvmStatsHeader = kvm_stats_header {
            flags, name_size, num_desc, id_offset, desc_offset, data_offset
        },
        abi::KvmStatsDesc = kvm_stats_desc { flags, exponent, size, offset, bucket_size },
        // ---- kvm_run and its exit payloads ----
        abi::KvmRun = kvm_run {
            request_interrupt_window, immediate_exit, padding1, exit_reason,
            ready_for_interrupt_injection, if_flag, flags, cr8, apic_base, exit => padding,
            kvm_valid_regs, kvm_dirty_regs, s
        },
        abi::KvmRunSyncArea = "MEMBER(struct kvm_run, s)" {},
        abi::KvmRunExitHw = "MEMBER(struct kvm_run, hw)" { hardware_exit_reason },
        abi::KvmRunExitFailEntry = "MEMBER(struct kvm_run, fail_entry)" {
            hardware_entry_failure_reason, cpu
        },
        abi::KvmRunExitException = "MEMBER(struct kvm_run, ex)" { exception, error_code },
        abi::KvmRunExitIo = "MEMBER(struct kvm_run, io)" { direction, size, port, count, data_offset },
        abi::KvmRunExitDebug = "MEMBER(struct kvm_run, debug)" { arch },
        abi::KvmRunExitMmio = "MEMBER(struct kvm_run, mmio)" { phys_addr, data, len, is_write },
        abi::KvmRunExitHypercall = "MEMBER(struct kvm_run, hypercall)" {
            nr, args, ret, longmode, pad
        },
        abi::KvmRunExitTprAccess = "MEMBER(struct kvm_run, tpr_access)" { rip, is_write, pad },
        abi::KvmRunExitS390Sieic = "MEMBER(struct kvm_run, s390_sieic)" { icptcode, ipa, ipb },
        abi::KvmRunExitS390Ucontrol = "MEMBER(struct kvm_run, s390_ucontrol)" {
            trans_exc_code, pgm_code
        },
        abi::KvmRunExitDcr = "MEMBER(struct kvm_run, dcr)" { dcrn, data, is_write },
        abi::KvmRunExitInternal = "MEMBER(struct kvm_run, internal)" { suberror, ndata, data },
        abi::KvmRunExitEmulationFailure = "MEMBER(struct kvm_run, emulation_failure)" {
            suberror, ndata, flags, insn_size, insn_bytes
        },
        abi::KvmRunExitOsi = "MEMBER(struct kvm_run, osi)" { gprs },
        abi::KvmRunExitPaprHcall = "MEMBER(struct kvm_run, papr_hcall)" { nr, ret, args },
        abi::KvmRunExitS390Tsch = "MEMBER(struct kvm_run, s390_tsch)" {
            subchannel_id, subchannel_nr, io_int_parm, io_int_word, ipb, dequeued
        },
        abi::KvmRunExitEpr = "MEMBER(struct kvm_run, epr)" { epr },
        abi::KvmRunExitSystemEvent = "MEMBER(struct kvm_run, system_event)" { r#type, ndata, data },
        abi::KvmRunExitS390Stsi = "MEMBER(struct kvm_run, s390_stsi)" {
            addr, ar, reserved, fc, sel1, sel2
        },
        abi::KvmRunExitEoi = "MEMBER(struct kvm_run, eoi)" { vector },
        abi::KvmHypervExit = kvm_hyperv_exit { r#type, pad1, u },
        abi::KvmHypervExitU = "MEMBER(struct kvm_hyperv_exit, u)" {},
        abi::KvmHypervExitSynic = "MEMBER(struct kvm_hyperv_exit, u.synic)" {
            msr, pad2, control, evt_page, msg_page
        },
        abi::KvmHypervExitHcall = "MEMBER(struct kvm_hyperv_exit, u.hcall)" { input, result, params },
        abi::KvmHypervExitSyndbg = "MEMBER(struct kvm_hyperv_exit, u.syndbg)" {
            msr, pad2, control, status, send_page, recv_page, pending_page
        },
        abi::KvmXenExit = kvm_xen_exit { r#type, u },
        abi::KvmXenExitU = "MEMBER(struct kvm_xen_exit, u)" {},
        abi::KvmXenExitHcall = "MEMBER(struct kvm_xen_exit, u.hcall)" {
            longmode, cpl, input, result, params
        },
        abi::KvmRunExitArmNisv = "MEMBER(struct kvm_run, arm_nisv)" { esr_iss, fault_ipa },
        abi::KvmRunExitMsr = "MEMBER(struct kvm_run, msr)" { error, pad, reason, index, data },
        abi::KvmRunExitRiscvSbi = "MEMBER(struct kvm_run, riscv_sbi)" {
            extension_id, function_id, args, ret
        },
        abi::KvmRunExitRiscvCsr = "MEMBER(struct kvm_run, riscv_csr)" {
            csr_num, new_value, write_mask, ret_value
        },
        abi::KvmRunExitNotify = "MEMBER(struct kvm_run, notify)" { flags },
        abi::KvmRunExitMemoryFault = "MEMBER(struct kvm_run, memory_fault)" { flags, gpa, size },
        // ---- x86 ----
        x86::KvmMemoryAlias = kvm_memory_alias {
            slot, flags, guest_phys_addr, memory_size, target_phys_addr
        },
        x86::KvmPicState = kvm_pic_state {
            last_irr, irr, imr, isr, priority_add, irq_base, read_reg_select, poll, special_mask,
            init_state, auto_eoi, rotate_on_auto_eoi, special_fully_nested_mode, init4, elcr,
            elcr_mask
        },
        x86::KvmIoapicState = kvm_ioapic_state { base_address, ioregsel, id, irr, pad, redirtbl },
        x86::KvmRegs = kvm_regs {
            rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8, r9, r10, r11, r12, r13, r14, r15, rip,
            rflags
        },
        x86::KvmLapicState = kvm_lapic_state { regs },
        x86::KvmSegment = kvm_segment {
            base, limit, selector, r#type, present, dpl, db, s, l, g, avl, unusable, padding
        },
        x86::KvmDtable = kvm_dtable { base, limit, padding },
        x86::KvmSregs = kvm_sregs {
            cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apic_base,
            interrupt_bitmap
        },
        x86::KvmSregs2 = kvm_sregs2 {
            cs, ds, es, fs, gs, ss, tr, ldt, gdt, idt, cr0, cr2, cr3, cr4, cr8, efer, apic_base,
            flags, pdptrs
        },
        x86::KvmFpu = kvm_fpu {
            fpr, fcw, fsw, ftwx, pad1, last_opcode, last_ip, last_dp, xmm, mxcsr, pad2
        },
        x86::KvmMsrEntry = kvm_msr_entry { index, reserved, data },
        x86::KvmMsrs = kvm_msrs { nmsrs, pad },
        x86::KvmMsrList = kvm_msr_list { nmsrs },
        x86::KvmMsrFilterRange = kvm_msr_filter_range { flags, nmsrs, base, bitmap },
        x86::KvmMsrFilter = kvm_msr_filter { flags, ranges },
        x86::KvmCpuidEntry = kvm_cpuid_entry { function, eax, ebx, ecx, edx, padding },
        x86::KvmCpuid = kvm_cpuid { nent, padding },
        x86::KvmCpuidEntry2 = kvm_cpuid_entry2 {
            function, index, flags, eax, ebx, ecx, edx, padding
        },
        x86::KvmCpuid2 = kvm_cpuid2 { nent, padding },
        x86::KvmPitChannelState = kvm_pit_channel_state {
            count, latched_count, count_latched, status_latched, status, read_state, write_state,
            write_latch, rw_mode, mode, bcd, gate, count_load_time
        },
        x86::KvmDebugExitArch = kvm_debug_exit_arch { exception, pad, pc, dr6, dr7 },
        x86::KvmGuestDebugArch = kvm_guest_debug_arch { debugreg },
        x86::KvmPitState = kvm_pit_state { channels },
        x86::KvmPitState2 = kvm_pit_state2 { channels, flags, reserved },
        x86::KvmPitConfig = kvm_pit_config { flags, pad },
        x86::KvmReinjectControl = kvm_reinject_control { pit_reinject, reserved },
        x86::KvmVcpuEvents = kvm_vcpu_events {
            exception, interrupt, nmi, sipi_vector, flags, smi, triple_fault, reserved,
            exception_has_payload, exception_payload
        },
        x86::KvmVcpuEventsException = "MEMBER(struct kvm_vcpu_events, exception)" {
            injected, nr, has_error_code, pending, error_code
        },
        x86::KvmVcpuEventsInterrupt = "MEMBER(struct kvm_vcpu_events, interrupt)" {
            injected, nr, soft, shadow
        },
        x86::KvmVcpuEventsNmi = "MEMBER(struct kvm_vcpu_events, nmi)" {
            injected, pending, masked, pad
        },
        x86::KvmVcpuEventsSmi = "MEMBER(struct kvm_vcpu_events, smi)" {
            smm, pending, smm_inside_nmi, latched_init
        },
        x86::KvmVcpuEventsTripleFault = "MEMBER(struct kvm_vcpu_events, triple_fault)" { pending },
        x86::KvmDebugregs = kvm_debugregs { db, dr6, dr7, flags, reserved },
        x86::KvmXsave = kvm_xsave { region },
        x86::KvmXcr = kvm_xcr { xcr, reserved, value },
        x86::KvmXcrs = kvm_xcrs { nr_xcrs, flags, xcrs, padding },
        x86::KvmSyncRegs = kvm_sync_regs { regs, sregs, events },
        x86::KvmVmxNestedStateHdr = kvm_vmx_nested_state_hdr {
            vmxon_pa, vmcs12_pa, smm, pad, flags, preemption_timer_deadline
        },
        x86::KvmVmxNestedStateHdrSmm = "MEMBER(struct kvm_vmx_nested_state_hdr, smm)" { flags },
        x86::KvmSvmNestedStateHdr = kvm_svm_nested_state_hdr { vmcb_pa },
        x86::KvmVmxNestedStateData = kvm_vmx_nested_state_data { vmcs12, shadow_vmcs12 },
        x86::KvmSvmNestedStateData = kvm_svm_nested_state_data { vmcb12 },
        x86::KvmNestedState = kvm_nested_state { flags, format, size, hdr },
        x86::KvmNestedStateHdr = "MEMBER(struct kvm_nested_state, hdr)" {},
        x86::KvmPmuEventFilter = kvm_pmu_event_filter {
            action, nevents, fixed_counter_bitmap, flags, pad
        },
        x86::KvmX86Mce = kvm_x86_mce { status, addr, misc, mcg_status, bank, pad1, pad2 },
        x86::KvmXenHvmConfig = kvm_xen_hvm_config {
            flags, msr, blob_addr_32, blob_addr_64, blob_size_32, blob_size_64, pad2
        },
        x86::KvmXenHvmAttr = kvm_xen_hvm_attr { r#type, pad, u },
        x86::KvmXenHvmAttrU = "MEMBER(struct kvm_xen_hvm_attr, u)" {},
        x86::KvmXenVcpuAttr = kvm_xen_vcpu_attr { r#type, pad, u },
        x86::KvmXenVcpuAttrU = "MEMBER(struct kvm_xen_vcpu_attr, u)" {},
        x86::KvmTprAccessCtl = kvm_tpr_access_ctl { enabled, flags, reserved },
        x86::KvmVapicAddr = kvm_vapic_addr { vapic_addr },
        x86::KvmSevCmd = kvm_sev_cmd { id, data, error, sev_fd },
        // ---- s390 / ppc structs that live in <linux/kvm.h> ----
        s390x::KvmS390Psw = kvm_s390_psw { mask, addr },
        s390x::KvmS390Interrupt = kvm_s390_interrupt { r#type, parm, parm64 },
        s390x::KvmS390IoInfo = kvm_s390_io_info {
            subchannel_id, subchannel_nr, io_int_parm, io_int_word
        },
        s390x::KvmS390ExtInfo = kvm_s390_ext_info { ext_params, pad, ext_params2 },
        s390x::KvmS390PgmInfo = kvm_s390_pgm_info {
            trans_exc_code, mon_code, per_address, data_exc_code, code, mon_class_nr, per_code,
            per_atmid, exc_access_id, per_access_id, op_access_id, flags, pad
        },
        s390x::KvmS390PrefixInfo = kvm_s390_prefix_info { address },
        s390x::KvmS390ExtcallInfo = kvm_s390_extcall_info { code },
        s390x::KvmS390EmergInfo = kvm_s390_emerg_info { code },
        s390x::KvmS390StopInfo = kvm_s390_stop_info { flags },
        s390x::KvmS390MchkInfo = kvm_s390_mchk_info {
            cr14, mcic, failing_storage_address, ext_damage_code, pad, fixed_logout
        },
        s390x::KvmS390Irq = kvm_s390_irq { r#type, u },
        s390x::KvmS390IrqU = "MEMBER(struct kvm_s390_irq, u)" {},
        s390x::KvmS390IrqState = kvm_s390_irq_state { buf, flags, len, reserved },
        s390x::KvmS390UcasMapping = kvm_s390_ucas_mapping { user_addr, vcpu_addr, length },
        s390x::KvmS390MemOp = kvm_s390_mem_op { gaddr, flags, size, op, buf, reserved },
        s390x::KvmS390Skeys = kvm_s390_skeys { start_gfn, count, skeydata_addr, flags, reserved },
        s390x::KvmS390CmmaLog = kvm_s390_cmma_log { start_gfn, count, flags, remaining, values },
        s390x::KvmPvCmd = kvm_pv_cmd { cmd, rc, rrc, data, flags, reserved },
        ppc::KvmPpcPvinfo = kvm_ppc_pvinfo { flags, hcall, pad },
        ppc::KvmPpcOnePageSize = kvm_ppc_one_page_size { page_shift, pte_enc },
        ppc::KvmPpcOneSegPageSize = kvm_ppc_one_seg_page_size { page_shift, slb_enc, enc },
        ppc::KvmPpcSmmuInfo = kvm_ppc_smmu_info { flags, slb_size, data_keys, instr_keys, sps },
        ppc::KvmPpcResizeHpt = kvm_ppc_resize_hpt { flags, shift, pad },
    ],
    host_ioctls: [
        ioctl::KVM_GET_API_VERSION, ioctl::KVM_CREATE_VM, ioctl::KVM_GET_MSR_INDEX_LIST,
        ioctl::KVM_CHECK_EXTENSION, ioctl::KVM_GET_VCPU_MMAP_SIZE, ioctl::KVM_GET_SUPPORTED_CPUID,
        ioctl::KVM_S390_ENABLE_SIE, ioctl::KVM_GET_EMULATED_CPUID,
        ioctl::KVM_GET_MSR_FEATURE_INDEX_LIST,
        ioctl::KVM_SET_MEMORY_REGION, ioctl::KVM_CREATE_VCPU, ioctl::KVM_GET_DIRTY_LOG,
        ioctl::KVM_SET_MEMORY_ALIAS, ioctl::KVM_SET_NR_MMU_PAGES, ioctl::KVM_GET_NR_MMU_PAGES,
        ioctl::KVM_SET_USER_MEMORY_REGION, ioctl::KVM_SET_TSS_ADDR,
        ioctl::KVM_SET_IDENTITY_MAP_ADDR, ioctl::KVM_SET_USER_MEMORY_REGION2,
        ioctl::KVM_S390_UCAS_MAP, ioctl::KVM_S390_UCAS_UNMAP, ioctl::KVM_S390_VCPU_FAULT,
        ioctl::KVM_CREATE_IRQCHIP, ioctl::KVM_IRQ_LINE, ioctl::KVM_GET_IRQCHIP,
        ioctl::KVM_SET_IRQCHIP, ioctl::KVM_CREATE_PIT, ioctl::KVM_GET_PIT, ioctl::KVM_SET_PIT,
        ioctl::KVM_IRQ_LINE_STATUS, ioctl::KVM_REGISTER_COALESCED_MMIO,
        ioctl::KVM_UNREGISTER_COALESCED_MMIO, ioctl::KVM_SET_GSI_ROUTING,
        ioctl::KVM_REINJECT_CONTROL, ioctl::KVM_IRQFD, ioctl::KVM_CREATE_PIT2,
        ioctl::KVM_SET_BOOT_CPU_ID, ioctl::KVM_IOEVENTFD, ioctl::KVM_XEN_HVM_CONFIG,
        ioctl::KVM_SET_CLOCK, ioctl::KVM_GET_CLOCK, ioctl::KVM_GET_PIT2, ioctl::KVM_SET_PIT2,
        ioctl::KVM_PPC_GET_PVINFO, ioctl::KVM_SET_TSC_KHZ, ioctl::KVM_GET_TSC_KHZ,
        ioctl::KVM_SIGNAL_MSI, ioctl::KVM_PPC_GET_SMMU_INFO, ioctl::KVM_PPC_ALLOCATE_HTAB,
        ioctl::KVM_ARM_SET_DEVICE_ADDR, ioctl::KVM_PPC_RESIZE_HPT_PREPARE,
        ioctl::KVM_PPC_RESIZE_HPT_COMMIT, ioctl::KVM_SET_PMU_EVENT_FILTER, ioctl::KVM_PPC_SVM_OFF,
        ioctl::KVM_S390_GET_SKEYS, ioctl::KVM_S390_SET_SKEYS, ioctl::KVM_S390_GET_CMMA_BITS,
        ioctl::KVM_S390_SET_CMMA_BITS, ioctl::KVM_MEMORY_ENCRYPT_OP,
        ioctl::KVM_MEMORY_ENCRYPT_REG_REGION, ioctl::KVM_MEMORY_ENCRYPT_UNREG_REGION,
        ioctl::KVM_HYPERV_EVENTFD, ioctl::KVM_CLEAR_DIRTY_LOG, ioctl::KVM_GET_SUPPORTED_HV_CPUID,
        ioctl::KVM_S390_PV_COMMAND, ioctl::KVM_X86_SET_MSR_FILTER, ioctl::KVM_RESET_DIRTY_RINGS,
        ioctl::KVM_XEN_HVM_GET_ATTR, ioctl::KVM_XEN_HVM_SET_ATTR, ioctl::KVM_GET_STATS_FD,
        ioctl::KVM_XEN_HVM_EVTCHN_SEND, ioctl::KVM_SET_MEMORY_ATTRIBUTES,
        ioctl::KVM_CREATE_GUEST_MEMFD, ioctl::KVM_CREATE_DEVICE, ioctl::KVM_ENABLE_CAP,
        ioctl::KVM_SET_DEVICE_ATTR, ioctl::KVM_GET_DEVICE_ATTR, ioctl::KVM_HAS_DEVICE_ATTR,
        ioctl::KVM_RUN, ioctl::KVM_GET_REGS, ioctl::KVM_SET_REGS, ioctl::KVM_GET_SREGS,
        ioctl::KVM_SET_SREGS, ioctl::KVM_TRANSLATE, ioctl::KVM_INTERRUPT, ioctl::KVM_GET_MSRS,
        ioctl::KVM_SET_MSRS, ioctl::KVM_SET_CPUID, ioctl::KVM_SET_SIGNAL_MASK, ioctl::KVM_GET_FPU,
        ioctl::KVM_SET_FPU, ioctl::KVM_GET_LAPIC, ioctl::KVM_SET_LAPIC, ioctl::KVM_SET_CPUID2,
        ioctl::KVM_GET_CPUID2, ioctl::KVM_TPR_ACCESS_REPORTING, ioctl::KVM_SET_VAPIC_ADDR,
        ioctl::KVM_S390_INTERRUPT, ioctl::KVM_S390_STORE_STATUS, ioctl::KVM_S390_SET_INITIAL_PSW,
        ioctl::KVM_S390_INITIAL_RESET, ioctl::KVM_GET_MP_STATE, ioctl::KVM_SET_MP_STATE,
        ioctl::KVM_NMI, ioctl::KVM_SET_GUEST_DEBUG, ioctl::KVM_X86_SETUP_MCE,
        ioctl::KVM_X86_GET_MCE_CAP_SUPPORTED, ioctl::KVM_X86_SET_MCE, ioctl::KVM_GET_VCPU_EVENTS,
        ioctl::KVM_SET_VCPU_EVENTS, ioctl::KVM_GET_DEBUGREGS, ioctl::KVM_SET_DEBUGREGS,
        ioctl::KVM_GET_XSAVE, ioctl::KVM_SET_XSAVE, ioctl::KVM_GET_XCRS, ioctl::KVM_SET_XCRS,
        ioctl::KVM_DIRTY_TLB, ioctl::KVM_GET_ONE_REG, ioctl::KVM_SET_ONE_REG,
        ioctl::KVM_KVMCLOCK_CTRL, ioctl::KVM_ARM_VCPU_INIT, ioctl::KVM_ARM_PREFERRED_TARGET,
        ioctl::KVM_GET_REG_LIST, ioctl::KVM_S390_MEM_OP, ioctl::KVM_S390_IRQ,
        ioctl::KVM_S390_SET_IRQ_STATE, ioctl::KVM_S390_GET_IRQ_STATE, ioctl::KVM_SMI,
        ioctl::KVM_GET_NESTED_STATE, ioctl::KVM_SET_NESTED_STATE, ioctl::KVM_ARM_VCPU_FINALIZE,
        ioctl::KVM_S390_NORMAL_RESET, ioctl::KVM_S390_CLEAR_RESET, ioctl::KVM_XEN_VCPU_GET_ATTR,
        ioctl::KVM_XEN_VCPU_SET_ATTR, ioctl::KVM_GET_SREGS2, ioctl::KVM_SET_SREGS2,
        ioctl::KVM_GET_XSAVE2, ioctl::KVM_S390_PV_CPU_COMMAND,
    ],
    host_consts: [
        abi::KVMIO, abi::KVM_API_VERSION, abi::KVM_MEM_LOG_DIRTY_PAGES, abi::KVM_MEM_READONLY,
        abi::KVM_MEM_GUEST_MEMFD, abi::KVM_MEMORY_ATTRIBUTE_PRIVATE,
        abi::KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, abi::KVM_DIRTY_LOG_INITIALLY_SET,
        abi::KVM_DIRTY_GFN_F_DIRTY, abi::KVM_DIRTY_GFN_F_RESET, abi::KVM_DIRTY_GFN_F_MASK,
        abi::KVM_IRQFD_FLAG_DEASSIGN, abi::KVM_IRQFD_FLAG_RESAMPLE, abi::KVM_MSI_VALID_DEVID,
        abi::KVM_IRQ_ROUTING_IRQCHIP, abi::KVM_IRQ_ROUTING_MSI, abi::KVM_IRQ_ROUTING_S390_ADAPTER,
        abi::KVM_IRQ_ROUTING_HV_SINT, abi::KVM_IRQ_ROUTING_XEN_EVTCHN,
        abi::KVM_IRQ_ROUTING_XEN_EVTCHN_PRIO_2LEVEL, abi::KVM_IOEVENTFD_FLAG_DATAMATCH,
        abi::KVM_IOEVENTFD_FLAG_PIO, abi::KVM_IOEVENTFD_FLAG_DEASSIGN,
        abi::KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY, abi::KVM_IOEVENTFD_VALID_FLAG_MASK,
        abi::KVM_MP_STATE_RUNNABLE, abi::KVM_MP_STATE_UNINITIALIZED,
        abi::KVM_MP_STATE_INIT_RECEIVED, abi::KVM_MP_STATE_HALTED,
        abi::KVM_MP_STATE_SIPI_RECEIVED, abi::KVM_MP_STATE_STOPPED, abi::KVM_MP_STATE_CHECK_STOP,
        abi::KVM_MP_STATE_OPERATING, abi::KVM_MP_STATE_LOAD, abi::KVM_MP_STATE_AP_RESET_HOLD,
        abi::KVM_MP_STATE_SUSPENDED, abi::KVM_GUESTDBG_ENABLE, abi::KVM_GUESTDBG_SINGLESTEP,
        abi::KVM_CLOCK_TSC_STABLE, abi::KVM_CLOCK_REALTIME, abi::KVM_CLOCK_HOST_TSC,
        abi::KVM_CREATE_DEVICE_TEST, abi::KVM_DEV_TYPE_FSL_MPIC_20, abi::KVM_DEV_TYPE_FSL_MPIC_42,
        abi::KVM_DEV_TYPE_XICS, abi::KVM_DEV_TYPE_VFIO, abi::KVM_DEV_TYPE_ARM_VGIC_V2,
        abi::KVM_DEV_TYPE_FLIC, abi::KVM_DEV_TYPE_ARM_VGIC_V3, abi::KVM_DEV_TYPE_ARM_VGIC_ITS,
        abi::KVM_DEV_TYPE_XIVE, abi::KVM_DEV_TYPE_ARM_PV_TIME, abi::KVM_DEV_TYPE_MAX,
        abi::KVM_DEV_VFIO_GROUP, abi::KVM_DEV_VFIO_GROUP_ADD, abi::KVM_DEV_VFIO_GROUP_DEL,
        abi::KVM_DEV_VFIO_GROUP_SET_SPAPR_TCE, abi::KVM_REG_ARCH_MASK, abi::KVM_REG_GENERIC,
        abi::KVM_REG_PPC, abi::KVM_REG_X86, abi::KVM_REG_IA64, abi::KVM_REG_ARM, abi::KVM_REG_S390,
        abi::KVM_REG_ARM64, abi::KVM_REG_MIPS, abi::KVM_REG_RISCV, abi::KVM_REG_SIZE_SHIFT,
        abi::KVM_REG_SIZE_MASK, abi::KVM_REG_SIZE_U8, abi::KVM_REG_SIZE_U16,
        abi::KVM_REG_SIZE_U32, abi::KVM_REG_SIZE_U64, abi::KVM_REG_SIZE_U128,
        abi::KVM_REG_SIZE_U256, abi::KVM_REG_SIZE_U512, abi::KVM_REG_SIZE_U1024,
        abi::KVM_REG_SIZE_U2048, abi::KVM_HYPERV_CONN_ID_MASK, abi::KVM_HYPERV_EVENTFD_DEASSIGN,
        abi::KVM_STATS_TYPE_SHIFT, abi::KVM_STATS_TYPE_MASK, abi::KVM_STATS_TYPE_CUMULATIVE,
        abi::KVM_STATS_TYPE_INSTANT, abi::KVM_STATS_TYPE_PEAK, abi::KVM_STATS_TYPE_LINEAR_HIST,
        abi::KVM_STATS_TYPE_LOG_HIST, abi::KVM_STATS_TYPE_MAX, abi::KVM_STATS_UNIT_SHIFT,
        abi::KVM_STATS_UNIT_MASK, abi::KVM_STATS_UNIT_NONE, abi::KVM_STATS_UNIT_BYTES,
        abi::KVM_STATS_UNIT_SECONDS, abi::KVM_STATS_UNIT_CYCLES, abi::KVM_STATS_UNIT_BOOLEAN,
        abi::KVM_STATS_UNIT_MAX, abi::KVM_STATS_BASE_SHIFT, abi::KVM_STATS_BASE_MASK,
        abi::KVM_STATS_BASE_POW10, abi::KVM_STATS_BASE_POW2, abi::KVM_STATS_BASE_MAX,
        abi::KVM_VM_S390_UCONTROL, abi::KVM_VM_PPC_HV, abi::KVM_VM_PPC_PR, abi::KVM_VM_MIPS_AUTO,
        abi::KVM_VM_MIPS_VZ, abi::KVM_VM_MIPS_TE, abi::KVM_VM_TYPE_ARM_IPA_SIZE_MASK,
        abi::KVM_S390_SIE_PAGE_OFFSET, abi::KVM_BUS_LOCK_DETECTION_OFF,
        abi::KVM_BUS_LOCK_DETECTION_EXIT, abi::KVM_PMU_CAP_DISABLE,
        abi::KVM_X2APIC_API_USE_32BIT_IDS, abi::KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK,
        abi::KVM_EXIT_UNKNOWN, abi::KVM_EXIT_EXCEPTION, abi::KVM_EXIT_IO, abi::KVM_EXIT_HYPERCALL,
        abi::KVM_EXIT_DEBUG, abi::KVM_EXIT_HLT, abi::KVM_EXIT_MMIO, abi::KVM_EXIT_IRQ_WINDOW_OPEN,
        abi::KVM_EXIT_SHUTDOWN, abi::KVM_EXIT_FAIL_ENTRY, abi::KVM_EXIT_INTR,
        abi::KVM_EXIT_SET_TPR, abi::KVM_EXIT_TPR_ACCESS, abi::KVM_EXIT_S390_SIEIC,
        abi::KVM_EXIT_S390_RESET, abi::KVM_EXIT_DCR, abi::KVM_EXIT_NMI,
        abi::KVM_EXIT_INTERNAL_ERROR, abi::KVM_EXIT_OSI, abi::KVM_EXIT_PAPR_HCALL,
        abi::KVM_EXIT_S390_UCONTROL, abi::KVM_EXIT_WATCHDOG, abi::KVM_EXIT_S390_TSCH,
        abi::KVM_EXIT_EPR, abi::KVM_EXIT_SYSTEM_EVENT, abi::KVM_EXIT_S390_STSI,
        abi::KVM_EXIT_IOAPIC_EOI, abi::KVM_EXIT_HYPERV, abi::KVM_EXIT_ARM_NISV,
        abi::KVM_EXIT_X86_RDMSR, abi::KVM_EXIT_X86_WRMSR, abi::KVM_EXIT_DIRTY_RING_FULL,
        abi::KVM_EXIT_AP_RESET_HOLD, abi::KVM_EXIT_X86_BUS_LOCK, abi::KVM_EXIT_XEN,
        abi::KVM_EXIT_RISCV_SBI, abi::KVM_EXIT_RISCV_CSR, abi::KVM_EXIT_NOTIFY,
        abi::KVM_EXIT_LOONGARCH_IOCSR, abi::KVM_EXIT_MEMORY_FAULT, abi::KVM_EXIT_IO_IN,
        abi::KVM_EXIT_IO_OUT, abi::KVM_INTERNAL_ERROR_EMULATION, abi::KVM_INTERNAL_ERROR_SIMUL_EX,
        abi::KVM_INTERNAL_ERROR_DELIVERY_EV, abi::KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
        abi::KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, abi::KVM_S390_RESET_POR,
        abi::KVM_S390_RESET_CLEAR, abi::KVM_S390_RESET_SUBSYSTEM, abi::KVM_S390_RESET_CPU_INIT,
        abi::KVM_S390_RESET_IPL, abi::KVM_SYSTEM_EVENT_SHUTDOWN, abi::KVM_SYSTEM_EVENT_RESET,
        abi::KVM_SYSTEM_EVENT_CRASH, abi::KVM_SYSTEM_EVENT_WAKEUP, abi::KVM_SYSTEM_EVENT_SUSPEND,
        abi::KVM_SYSTEM_EVENT_SEV_TERM, abi::KVM_MSR_EXIT_REASON_INVAL,
        abi::KVM_MSR_EXIT_REASON_UNKNOWN, abi::KVM_MSR_EXIT_REASON_FILTER,
        abi::KVM_NOTIFY_CONTEXT_INVALID, abi::KVM_MEMORY_EXIT_FLAG_PRIVATE,
        abi::KVM_EXIT_HYPERV_SYNIC, abi::KVM_EXIT_HYPERV_HCALL, abi::KVM_EXIT_HYPERV_SYNDBG,
        abi::KVM_EXIT_XEN_HCALL, abi::SYNC_REGS_SIZE_BYTES,
        x86::KVM_PIO_PAGE_OFFSET, x86::KVM_COALESCED_MMIO_PAGE_OFFSET,
        x86::KVM_DIRTY_LOG_PAGE_OFFSET, x86::KVM_NR_INTERRUPTS, x86::DE_VECTOR, x86::DB_VECTOR,
        x86::BP_VECTOR, x86::OF_VECTOR, x86::BR_VECTOR, x86::UD_VECTOR, x86::NM_VECTOR,
        x86::DF_VECTOR, x86::TS_VECTOR, x86::NP_VECTOR, x86::SS_VECTOR, x86::GP_VECTOR,
        x86::PF_VECTOR, x86::MF_VECTOR, x86::AC_VECTOR, x86::MC_VECTOR, x86::XM_VECTOR,
        x86::VE_VECTOR, x86::KVM_IRQCHIP_PIC_MASTER, x86::KVM_IRQCHIP_PIC_SLAVE,
        x86::KVM_IRQCHIP_IOAPIC, x86::KVM_NR_IRQCHIPS, x86::KVM_IOAPIC_NUM_PINS,
        x86::KVM_RUN_X86_SMM, x86::KVM_RUN_X86_BUS_LOCK, x86::KVM_X86_DEFAULT_VM,
        x86::KVM_X86_SW_PROTECTED_VM, x86::KVM_APIC_REG_SIZE,
        x86::KVM_SREGS2_FLAGS_PDPTRS_VALID, x86::KVM_MSR_FILTER_MAX_BITMAP_SIZE,
        x86::KVM_MSR_FILTER_READ, x86::KVM_MSR_FILTER_WRITE, x86::KVM_MSR_FILTER_MAX_RANGES,
        x86::KVM_MSR_FILTER_DEFAULT_ALLOW, x86::KVM_MSR_FILTER_DEFAULT_DENY,
        x86::KVM_CPUID_FLAG_SIGNIFCANT_INDEX, x86::KVM_CPUID_FLAG_STATEFUL_FUNC,
        x86::KVM_CPUID_FLAG_STATE_READ_NEXT, x86::KVM_GUESTDBG_USE_SW_BP,
        x86::KVM_GUESTDBG_USE_HW_BP, x86::KVM_GUESTDBG_INJECT_DB, x86::KVM_GUESTDBG_INJECT_BP,
        x86::KVM_GUESTDBG_BLOCKIRQ, x86::KVM_PIT_FLAGS_HPET_LEGACY,
        x86::KVM_PIT_FLAGS_SPEAKER_DATA_ON, x86::KVM_PIT_SPEAKER_DUMMY,
        x86::KVM_VCPUEVENT_VALID_NMI_PENDING, x86::KVM_VCPUEVENT_VALID_SIPI_VECTOR,
        x86::KVM_VCPUEVENT_VALID_SHADOW, x86::KVM_VCPUEVENT_VALID_SMM,
        x86::KVM_VCPUEVENT_VALID_PAYLOAD, x86::KVM_VCPUEVENT_VALID_TRIPLE_FAULT,
        x86::KVM_X86_SHADOW_INT_MOV_SS, x86::KVM_X86_SHADOW_INT_STI, x86::KVM_MAX_XCRS,
        x86::KVM_SYNC_X86_REGS, x86::KVM_SYNC_X86_SREGS, x86::KVM_SYNC_X86_EVENTS,
        x86::KVM_SYNC_X86_VALID_FIELDS, x86::KVM_X86_QUIRK_LINT0_REENABLED,
        x86::KVM_X86_QUIRK_CD_NW_CLEARED, x86::KVM_X86_QUIRK_LAPIC_MMIO_HOLE,
        x86::KVM_X86_QUIRK_OUT_7E_INC_RIP, x86::KVM_X86_QUIRK_MISC_ENABLE_NO_MWAIT,
        x86::KVM_X86_QUIRK_FIX_HYPERCALL_INSN, x86::KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS,
        x86::KVM_X86_DISABLE_EXITS_MWAIT, x86::KVM_X86_DISABLE_EXITS_HLT,
        x86::KVM_X86_DISABLE_EXITS_PAUSE, x86::KVM_X86_DISABLE_EXITS_CSTATE,
        x86::KVM_X86_DISABLE_VALID_EXITS, x86::KVM_X86_NOTIFY_VMEXIT_ENABLED,
        x86::KVM_X86_NOTIFY_VMEXIT_USER, x86::KVM_STATE_NESTED_FORMAT_VMX,
        x86::KVM_STATE_NESTED_FORMAT_SVM, x86::KVM_STATE_NESTED_GUEST_MODE,
        x86::KVM_STATE_NESTED_RUN_PENDING, x86::KVM_STATE_NESTED_EVMCS,
        x86::KVM_STATE_NESTED_MTF_PENDING, x86::KVM_STATE_NESTED_GIF_SET,
        x86::KVM_STATE_NESTED_SMM_GUEST_MODE, x86::KVM_STATE_NESTED_SMM_VMXON,
        x86::KVM_STATE_NESTED_VMX_VMCS_SIZE, x86::KVM_STATE_NESTED_SVM_VMCB_SIZE,
        x86::KVM_STATE_VMX_PREEMPTION_TIMER_DEADLINE, x86::KVM_X86_XCOMP_GUEST_SUPP,
        x86::KVM_PMU_EVENT_ALLOW, x86::KVM_PMU_EVENT_DENY, x86::KVM_VCPU_TSC_CTRL,
        x86::KVM_VCPU_TSC_OFFSET, x86::KVM_XEN_HVM_CONFIG_HYPERCALL_MSR,
        x86::KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL, x86::KVM_XEN_HVM_CONFIG_SHARED_INFO,
        x86::KVM_XEN_HVM_CONFIG_RUNSTATE, x86::KVM_XEN_HVM_CONFIG_EVTCHN_2LEVEL,
        x86::KVM_XEN_HVM_CONFIG_EVTCHN_SEND,
        s390x::KVM_S390_SIGP_STOP, s390x::KVM_S390_PROGRAM_INT, s390x::KVM_S390_SIGP_SET_PREFIX,
        s390x::KVM_S390_RESTART, s390x::KVM_S390_INT_PFAULT_INIT, s390x::KVM_S390_INT_PFAULT_DONE,
        s390x::KVM_S390_MCHK, s390x::KVM_S390_INT_CLOCK_COMP, s390x::KVM_S390_INT_CPU_TIMER,
        s390x::KVM_S390_INT_VIRTIO, s390x::KVM_S390_INT_SERVICE, s390x::KVM_S390_INT_EMERGENCY,
        s390x::KVM_S390_INT_EXTERNAL_CALL, s390x::KVM_S390_INT_IO_MIN,
        s390x::KVM_S390_INT_IO_MAX, s390x::KVM_S390_INT_IO_AI_MASK,
        s390x::KVM_S390_PGM_FLAGS_ILC_VALID, s390x::KVM_S390_PGM_FLAGS_ILC_0,
        s390x::KVM_S390_PGM_FLAGS_ILC_1, s390x::KVM_S390_PGM_FLAGS_ILC_MASK,
        s390x::KVM_S390_PGM_FLAGS_NO_REWIND, s390x::KVM_S390_STOP_FLAG_STORE_STATUS,
        s390x::KVM_S390_MEMOP_LOGICAL_READ, s390x::KVM_S390_MEMOP_LOGICAL_WRITE,
        s390x::KVM_S390_MEMOP_SIDA_READ, s390x::KVM_S390_MEMOP_SIDA_WRITE,
        s390x::KVM_S390_MEMOP_ABSOLUTE_READ, s390x::KVM_S390_MEMOP_ABSOLUTE_WRITE,
        s390x::KVM_S390_MEMOP_F_CHECK_ONLY, s390x::KVM_S390_MEMOP_F_INJECT_EXCEPTION,
        s390x::KVM_S390_MEMOP_F_SKEY_PROTECTION, s390x::KVM_S390_GET_SKEYS_NONE,
        s390x::KVM_S390_SKEYS_MAX, s390x::KVM_S390_CMMA_PEEK, s390x::KVM_S390_STORE_STATUS_NOADDR,
        s390x::KVM_S390_STORE_STATUS_PREFIXED,
        ppc::KVM_PPC_PVINFO_FLAGS_EV_IDLE, ppc::KVM_PPC_PAGE_SIZES_MAX_SZ,
        ppc::KVM_PPC_PAGE_SIZES_REAL, ppc::KVM_PPC_1T_SEGMENTS, ppc::KVM_PPC_NO_HASH,
    ],
    arm64_structs: [
        arm64::KvmRegs = kvm_regs { regs, sp_el1, elr_el1, spsr, fp_regs },
        arm64::UserPtRegs = user_pt_regs { regs, sp, pc, pstate },
        arm64::UserFpsimdState = user_fpsimd_state { vregs, fpsr, fpcr, __reserved },
        arm64::KvmVcpuInit = kvm_vcpu_init { target, features },
        arm64::KvmGuestDebugArch = kvm_guest_debug_arch { dbg_bcr, dbg_bvr, dbg_wcr, dbg_wvr },
        arm64::KvmGuestDebug = kvm_guest_debug { control, pad, arch },
        arm64::KvmDebugExitArch = kvm_debug_exit_arch { hsr, hsr_high, far },
        arm64::KvmSyncRegs = kvm_sync_regs { device_irq_level },
        abi::KvmRun = kvm_run {
            request_interrupt_window, immediate_exit, padding1, exit_reason,
            ready_for_interrupt_injection, if_flag, flags, cr8, apic_base, exit => padding,
            kvm_valid_regs, kvm_dirty_regs, s
        },
        // Not `abi::KvmIrqchip`: arm64's `chip` union is only `dummy[512]`, so the
        // C struct is 4-aligned there (same size and offsets as on x86).
        abi::KvmUserspaceMemoryRegion = kvm_userspace_memory_region {
            slot, flags, guest_phys_addr, memory_size, userspace_addr
        },
    ],
    arm64_consts: [
        arm64::KVM_ARM_VCPU_INIT, arm64::KVM_ARM_PREFERRED_TARGET, arm64::KVM_ARM_VCPU_FINALIZE,
        arm64::KVM_SET_GUEST_DEBUG, arm64::KVM_COALESCED_MMIO_PAGE_OFFSET, arm64::KVM_NR_SPSR,
        arm64::KVM_SPSR_EL1, arm64::KVM_SPSR_ABT, arm64::KVM_SPSR_UND, arm64::KVM_SPSR_IRQ,
        arm64::KVM_SPSR_FIQ, arm64::KVM_ARM_TARGET_AEM_V8, arm64::KVM_ARM_TARGET_FOUNDATION_V8,
        arm64::KVM_ARM_TARGET_CORTEX_A57, arm64::KVM_ARM_TARGET_XGENE_POTENZA,
        arm64::KVM_ARM_TARGET_CORTEX_A53, arm64::KVM_ARM_TARGET_GENERIC_V8,
        arm64::KVM_ARM_NUM_TARGETS, arm64::KVM_ARM_VCPU_POWER_OFF, arm64::KVM_ARM_VCPU_EL1_32BIT,
        arm64::KVM_ARM_VCPU_PSCI_0_2, arm64::KVM_ARM_VCPU_PMU_V3, arm64::KVM_ARM_VCPU_SVE,
        arm64::KVM_ARM_VCPU_PTRAUTH_ADDRESS, arm64::KVM_ARM_VCPU_PTRAUTH_GENERIC,
        arm64::KVM_ARM_MAX_DBG_REGS, arm64::KVM_ARM_DEV_EL1_VTIMER, arm64::KVM_ARM_DEV_EL1_PTIMER,
        arm64::KVM_ARM_DEV_PMU, arm64::KVM_REG_ARM_COPROC_MASK, arm64::KVM_REG_ARM_COPROC_SHIFT,
        arm64::KVM_REG_ARM_CORE, arm64::KVM_REG_ARM_DEMUX, arm64::KVM_REG_ARM64_SYSREG,
        arm64::KVM_REG_ARM_FW, arm64::KVM_REG_ARM64_SVE, arm64::KVM_REG_ARM_FW_FEAT_BMAP,
        arm64::KVM_REG_ARM64_SYSREG_OP0_MASK, arm64::KVM_REG_ARM64_SYSREG_OP0_SHIFT,
        arm64::KVM_REG_ARM64_SYSREG_OP1_MASK, arm64::KVM_REG_ARM64_SYSREG_OP1_SHIFT,
        arm64::KVM_REG_ARM64_SYSREG_CRN_MASK, arm64::KVM_REG_ARM64_SYSREG_CRN_SHIFT,
        arm64::KVM_REG_ARM64_SYSREG_CRM_MASK, arm64::KVM_REG_ARM64_SYSREG_CRM_SHIFT,
        arm64::KVM_REG_ARM64_SYSREG_OP2_MASK, arm64::KVM_REG_ARM64_SYSREG_OP2_SHIFT,
        arm64::KVM_REG_ARM_PSCI_VERSION, arm64::KVM_REG_ARM_TIMER_CTL,
        arm64::KVM_REG_ARM_TIMER_CVAL, arm64::KVM_REG_ARM_TIMER_CNT,
        // The generic asm-generic numbers are valid on arm64 too.
        ioctl::KVM_RUN, ioctl::KVM_CREATE_VM, ioctl::KVM_SET_USER_MEMORY_REGION,
        ioctl::KVM_GET_ONE_REG, ioctl::KVM_SET_ONE_REG, ioctl::KVM_GET_REG_LIST,
        ioctl::KVM_IRQ_LINE, ioctl::KVM_GET_IRQCHIP, ioctl::KVM_ARM_SET_DEVICE_ADDR,
        ioctl::KVM_CREATE_DEVICE, ioctl::KVM_SET_DEVICE_ATTR, ioctl::KVM_ENABLE_CAP,
    ],
    ppc_structs: [
        ppc::KvmRegs = kvm_regs {
            pc, cr, ctr, lr, xer, msr, srr0, srr1, pid, sprg0, sprg1, sprg2, sprg3, sprg4, sprg5,
            sprg6, sprg7, gpr
        },
        ppc::KvmFpu = kvm_fpu { fpr },
        abi::KvmRun = kvm_run {
            request_interrupt_window, immediate_exit, padding1, exit_reason,
            ready_for_interrupt_injection, if_flag, flags, cr8, apic_base, exit => padding,
            kvm_valid_regs, kvm_dirty_regs, s
        },
    ],
    ppc_consts: [
        ppc::KVM_GET_REGS, ppc::KVM_SET_REGS, ppc::KVM_GET_FPU, ppc::KVM_SET_FPU,
        ppc::KVM_CREATE_VM, ppc::KVM_CREATE_VCPU, ppc::KVM_RUN, ppc::KVM_PPC_GET_PVINFO,
        ppc::KVM_PPC_GET_SMMU_INFO, ppc::KVM_COALESCED_MMIO_PAGE_OFFSET, ppc::KVM_REG_PPC_HIOR,
        ppc::KVM_REG_PPC_DAR, ppc::KVM_REG_PPC_DSISR, ppc::KVM_REG_PPC_FPR0, ppc::KVM_REG_PPC_VR0,
        ppc::KVM_REG_PPC_VSCR, ppc::KVM_REG_PPC_VPA_ADDR, ppc::KVM_REG_PPC_TB_OFFSET,
        ppc::KVM_REG_PPC_LPCR, ppc::KVM_REG_PPC_LPCR_64, ppc::KVM_REG_PPC_PPR,
        ppc::KVM_REG_PPC_ARCH_COMPAT, ppc::KVM_REG_PPC_DEC_EXPIRY,
    ],
    s390x_structs: [
        s390x::KvmRegs = kvm_regs { gprs },
        s390x::KvmSregs = kvm_sregs { acrs, crs },
        s390x::KvmFpu = kvm_fpu { fpc, fprs },
        s390x::KvmDebugExitArch = kvm_debug_exit_arch { addr, r#type, pad },
        s390x::KvmHwBreakpoint = kvm_hw_breakpoint { addr, phys_addr, len, r#type, pad },
        s390x::KvmGuestDebugArch = kvm_guest_debug_arch { nr_hw_bp, pad, hw_bp },
        s390x::KvmGuestDebug = kvm_guest_debug { control, pad, arch },
        s390x::KvmRun = kvm_run {
            request_interrupt_window, immediate_exit, padding1, exit_reason,
            ready_for_interrupt_injection, if_flag, flags, cr8, apic_base, psw_mask, psw_addr,
            exit => padding, kvm_valid_regs, kvm_dirty_regs, s
        },
        s390x::KvmS390Irq = kvm_s390_irq { r#type, u },
        s390x::KvmS390MemOp = kvm_s390_mem_op { gaddr, flags, size, op, buf, reserved },
    ],
    s390x_consts: [
        s390x::KVM_GET_REGS, s390x::KVM_SET_REGS, s390x::KVM_GET_SREGS, s390x::KVM_SET_SREGS,
        s390x::KVM_GET_FPU, s390x::KVM_SET_FPU, s390x::KVM_SET_GUEST_DEBUG, s390x::KVM_HW_BP,
        s390x::KVM_HW_WP_WRITE, s390x::KVM_SINGLESTEP, s390x::KVM_S390_INTERRUPT,
        s390x::KVM_S390_INITIAL_RESET, s390x::KVM_S390_SET_INITIAL_PSW, s390x::KVM_S390_MEM_OP,
        s390x::KVM_S390_IRQ, s390x::KVM_S390_VCPU_FAULT, s390x::KVM_S390_STORE_STATUS,
        s390x::KVM_SYNC_PREFIX, s390x::KVM_SYNC_GPRS, s390x::KVM_SYNC_ACRS, s390x::KVM_SYNC_CRS,
        s390x::KVM_SYNC_ARCH0, s390x::KVM_SYNC_PFAULT, s390x::KVM_SYNC_VRS, s390x::KVM_SYNC_RICCB,
        s390x::KVM_SYNC_FPRS,
    ],
}
