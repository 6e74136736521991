"""The numbers of the kernel's nf_tables netlink interface (linux/netlink.h, nfnetlink.h,
nf_tables.h) that nft_netlink reads with and iptables_nft_write writes with."""

from __future__ import annotations

import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFNETLINK_V0 = 0
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFPROTO = {4: 2, 6: 10}  # NFPROTO_IPV4, NFPROTO_IPV6; AF_UNSPEC (0) for a batch's bounds
AF_UNSPEC = 0

# nf_tables messages
NFT_MSG_NEWCHAIN = 3
NFT_MSG_GETCHAIN = 4
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_DELRULE = 8
NFT_MSG_NEWGEN = 15
NFT_MSG_GETGEN = 16

# netlink header flags and types
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_DUMP_INTR = 0x10
NLM_F_EXCL = 0x200
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 0x8000

# attributes
NFTA_CHAIN_TABLE = 1
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_PAYLOAD_DREG = 1
NFTA_PAYLOAD_BASE = 2
NFTA_PAYLOAD_OFFSET = 3
NFTA_PAYLOAD_LEN = 4
NFTA_CMP_SREG = 1
NFTA_CMP_OP = 2
NFTA_CMP_DATA = 3
NFTA_BITWISE_SREG = 1
NFTA_BITWISE_DREG = 2
NFTA_BITWISE_LEN = 3
NFTA_BITWISE_MASK = 4
NFTA_BITWISE_XOR = 5
NFTA_IMMEDIATE_DREG = 1
NFTA_IMMEDIATE_DATA = 2
NFTA_COUNTER_BYTES = 1
NFTA_COUNTER_PACKETS = 2
# NFTA_MATCH_* and NFTA_TARGET_* (xtables extensions through nft_compat) share these.
NFTA_XT_NAME = 1
NFTA_XT_REV = 2
NFTA_XT_INFO = 3
NFTA_DATA_VALUE = 1
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFTA_VERDICT_CHAIN = 2
NFTA_GEN_ID = 1

# values
NFT_REG_VERDICT = 0
NFT_REG_1 = 1
NFT_PAYLOAD_NETWORK_HEADER = 1
NFT_CMP_EQ = 0
NFT_CMP_NEQ = 1
NF_ACCEPT = 1
NFT_JUMP = -3
NFT_GOTO = -4

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
NFGENMSG = struct.Struct("=BBH")  # family, version, resource id (big-endian)
NLMSGERR = struct.Struct("=i")  # an NLMSG_ERROR's first field: 0 or -errno
# nf_tables' attribute values are big-endian: registers, offsets, verdict codes, handles.
BE32 = struct.Struct(">I")
BE32_SIGNED = struct.Struct(">i")
BE64 = struct.Struct(">Q")
# What one recv of an nfnetlink socket reads: a dump's part, a batch's answers.
RECV_BYTES = 1 << 16
