"""A CRI client, as a kubelet is one: runtime.v1.RuntimeService over containerd's socket.

runtime_v1.proto (beside this file) is the part of the CRI v1 API the tests use, with the
API's own names and field numbers. It is compiled with grpcio-tools once per test process into
a temporary directory (nothing generated is kept in the tree), and the RPCs are called through
a plain grpc channel with the generated messages' (de)serializers: no generated stub code.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_tools import protoc

PROTO = Path(__file__).with_name("runtime_v1.proto")
SERVICE = "/runtime.v1.RuntimeService/"
RPC_TIMEOUT = 180.0  # seconds: 30 pods started at once on 2 cores, one-shot plugins


@functools.cache
def messages() -> ModuleType:
    """runtime_v1_pb2, compiled now (once: protobuf keeps one descriptor per file name); the
    generated file is gone once it is loaded."""
    with tempfile.TemporaryDirectory(prefix="cbpt-cri-proto-") as out:
        code = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}", str(PROTO)])
        assert code == 0, f"protoc failed on {PROTO} ({code})"
        generated = Path(out) / "runtime_v1_pb2.py"
        spec = importlib.util.spec_from_file_location("runtime_v1_pb2", generated)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class Pod:
    """What a kubelet puts in a PodSandboxConfig for the network: identity, hostPorts,
    annotations (bandwidth limits are annotations), and the pod's cgroup parent."""

    name: str
    namespace: str = "default"
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    port_mappings: Sequence[PortMapping] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    host_network: bool = False  # hostNetwork: the node's network namespace, no CNI call


@dataclass(frozen=True)
class PodStatus:
    id: str
    ready: bool
    ip: str
    additional_ips: tuple[str, ...]
    info: Mapping[str, Any]  # containerd's verbose info (JSON)

    @property
    def ips(self) -> tuple[str, ...]:
        return (self.ip, *self.additional_ips) if self.ip else self.additional_ips

    @property
    def netns(self) -> str:
        """The pod's network namespace path, from the sandbox's OCI spec."""
        spec = self.info.get("runtimeSpec") or {}
        for namespace in spec.get("linux", {}).get("namespaces", []):
            if namespace.get("type") == "network":
                return str(namespace.get("path", ""))
        return ""

    @property
    def pid(self) -> int:
        return int(self.info.get("pid") or 0)


class CriClient:
    def __init__(self, socket: Path) -> None:
        self.pb = messages()
        self.channel = grpc.insecure_channel(f"unix://{socket}")

    def _call(self, method: str, request: Any, response: str) -> Any:
        rpc = self.channel.unary_unary(
            SERVICE + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=getattr(self.pb, response).FromString,
        )
        return rpc(request, timeout=RPC_TIMEOUT)

    def version(self) -> tuple[str, str, str]:
        """(runtime name, runtime version, CRI API version)."""
        got = self._call("Version", self.pb.VersionRequest(version="v1"), "VersionResponse")
        return str(got.runtime_name), str(got.runtime_version), str(got.runtime_api_version)

    def run(self, pod: Pod) -> str:
        """RunPodSandbox: the sandbox's ID once its network is up (or a grpc.RpcError)."""
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=pod.name, uid=pod.uid, namespace=pod.namespace),
            hostname="" if pod.host_network else pod.name,  # a kubelet sends none for these
            port_mappings=[
                pb.PortMapping(
                    protocol=pb.Protocol.Value(m.protocol),
                    container_port=m.container_port,
                    host_port=m.host_port,
                    host_ip=m.host_ip,
                )
                for m in pod.port_mappings
            ],
            labels=dict(pod.labels),
            annotations=dict(pod.annotations),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=pod.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(
                        network=pb.NamespaceMode.Value("NODE" if pod.host_network else "POD")
                    )
                ),
            ),
        )
        request = pb.RunPodSandboxRequest(config=config)
        return str(self._call("RunPodSandbox", request, "RunPodSandboxResponse").pod_sandbox_id)

    def stop(self, pod_id: str) -> None:
        self._call(
            "StopPodSandbox",
            self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id),
            "StopPodSandboxResponse",
        )

    def remove(self, pod_id: str) -> None:
        request = self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id)
        self._call("RemovePodSandbox", request, "RemovePodSandboxResponse")

    def status(self, pod_id: str) -> PodStatus:
        request = self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True)
        got = self._call("PodSandboxStatus", request, "PodSandboxStatusResponse")
        status = got.status
        info = json.loads(got.info["info"]) if "info" in got.info else {}
        return PodStatus(
            id=str(status.id),
            ready=status.state == self.pb.PodSandboxState.Value("SANDBOX_READY"),
            ip=str(status.network.ip),
            additional_ips=tuple(str(p.ip) for p in status.network.additional_ips),
            info=info,
        )

    def pods(self) -> list[str]:
        """Every sandbox the runtime knows, ready or not."""
        got = self._call(
            "ListPodSandbox", self.pb.ListPodSandboxRequest(), "ListPodSandboxResponse"
        )
        return [str(item.id) for item in got.items]

    def close(self) -> None:
        self.channel.close()
