//! PVH entry: Xen starts the domain in 32-bit protected mode with paging off at the
//! `XEN_ELFNOTE_PHYS32_ENTRY` address, ebx holding the physical address of `hvm_start_info`.
//! The code below identity-maps the first 4 GiB with 2 MiB pages (RAM, the frame window of
//! `main.rs` and the MMIO below 4 GiB), enters long mode, loads a flat GDT and calls
//! `kmain(start_info)` on a static stack.

use core::arch::global_asm;

const STACK_SIZE: usize = 64 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
static mut STACK: Stack = Stack([0; STACK_SIZE]);

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut PML4: Table = Table([0; 512]);
static mut PDPT: Table = Table([0; 512]);
/// Four page directories: 4 x 512 x 2 MiB = 4 GiB.
#[repr(C, align(4096))]
struct Directories([u64; 2048]);
static mut PD: Directories = Directories([0; 2048]);

/// Null, 64-bit code (selector 0x08), data (0x10).
#[repr(C, align(8))]
struct Gdt([u64; 3]);
static GDT: Gdt = Gdt([0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff]);

global_asm!(
    ".section .text.entry, \"ax\"",
    ".globl _start",
    ".code32",
    "_start:",
    "    mov esi, ebx", // start_info, kept for kmain
    // PML4[0] -> PDPT; PDPT[0..4] -> PD[0..4]; PD entries: 2 MiB, present, writable.
    "    mov eax, offset {pdpt}",
    "    or eax, 3",
    "    mov dword ptr [{pml4}], eax",
    "    xor ecx, ecx",
    "1:  mov eax, ecx",
    "    shl eax, 12",
    "    add eax, offset {pd}",
    "    or eax, 3",
    "    mov dword ptr [{pdpt} + ecx * 8], eax",
    "    inc ecx",
    "    cmp ecx, 4",
    "    jb 1b",
    "    xor ecx, ecx",
    "2:  mov eax, ecx",
    "    shl eax, 21",
    "    or eax, 0x83",
    "    mov dword ptr [{pd} + ecx * 8], eax",
    "    mov eax, ecx",
    "    shr eax, 11",
    "    mov dword ptr [{pd} + ecx * 8 + 4], eax",
    "    inc ecx",
    "    cmp ecx, 2048",
    "    jb 2b",
    // CR4: PAE, OSFXSR, OSXMMEXCPT (the compiler uses SSE).
    "    mov eax, cr4",
    "    or eax, 0x620",
    "    mov cr4, eax",
    "    mov eax, offset {pml4}",
    "    mov cr3, eax",
    // EFER.LME.
    "    mov ecx, 0xc0000080",
    "    rdmsr",
    "    or eax, 0x100",
    "    wrmsr",
    // CR0: PG | PE | MP, EM clear.
    "    mov eax, cr0",
    "    and eax, 0xfffffffb",
    "    or eax, 0x80000003",
    "    mov cr0, eax",
    "    lgdt [stubdom_gdtr]",
    // ljmp 0x08:3f (ptr16:32).
    "    .byte 0xea",
    "    .long 3f",
    "    .word 0x08",
    ".code64",
    "3:  mov eax, 0x10",
    "    mov ds, eax",
    "    mov es, eax",
    "    mov ss, eax",
    "    mov fs, eax",
    "    mov gs, eax",
    "    lea rsp, [rip + {stack} + {size}]",
    "    mov edi, esi", // zero-extends: kmain(start_info as u64)
    "    call {main}",
    "4:  hlt",
    "    jmp 4b",
    // The GDT register image (limit, 32-bit base), read by lgdt in 32-bit mode.
    ".section .rodata",
    ".balign 8",
    "stubdom_gdtr:",
    "    .word 23",
    "    .long {gdt}",
    ".previous",
    pml4 = sym PML4,
    pdpt = sym PDPT,
    pd = sym PD,
    gdt = sym GDT,
    stack = sym STACK,
    size = const STACK_SIZE,
    main = sym crate::kmain,
);

global_asm!(
    ".section .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4, 4, 18", // XEN_ELFNOTE_PHYS32_ENTRY
    ".asciz \"Xen\"",
    ".balign 4",
    ".long _start",
    ".balign 4",
    ".previous",
);
