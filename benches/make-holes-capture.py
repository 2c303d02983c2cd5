#!/usr/bin/env python3
# Writes a capture that keeps TCP reassembly busy holding out-of-order segments (a SPAN port that
# lost a segment and sees no ACKs from the client, e.g. asymmetric routing):
#
#   benches/make-holes-capture.py OUT.pcap FLOWS SEGS      (e.g. 100 1000: 5 MB)
#
# FLOWS connections on port 1433; in each, the server sends SEGS segments of 1000 bytes, the first
# one missing and no ACK from the client: every later segment waits behind the hole until the
# reassembly budget (1024 segments / 1 MiB), the hole timeout or the connection's end gives up on
# it. Replay with `dbtap replay OUT.pcap --summary json`: `ooo_segments` counts them.
import struct
import sys

out=bytearray(struct.pack('<IHHiIII',0xa1b2c3d4,2,4,0,0,65535,1))
def csum(b):
    if len(b)%2: b+=b'\0'
    s=sum(struct.unpack('>%dH'%(len(b)//2),b)); s=(s&0xffff)+(s>>16); s=(s&0xffff)+(s>>16); return ~s&0xffff
t=[1_700_000_000_000_000]
def pkt(src,dst,sp,dp,seq,ack,flags,payload=b''):
    tcp=struct.pack('>HHIIBBHHH',sp,dp,seq,ack,5<<4,flags,65535,0,0)+payload
    ip=struct.pack('>BBHHHBBH4s4s',0x45,0,20+len(tcp),0,0x4000,64,6,0,bytes(src),bytes(dst))
    ip=ip[:10]+struct.pack('>H',csum(ip))+ip[12:]
    fr=b'\x02'*6+b'\x04'*6+b'\x08\x00'+ip+tcp
    t[0]+=10
    out.extend(struct.pack('<IIII',t[0]//1_000_000,t[0]%1_000_000,len(fr),len(fr))+fr)
FLOWS,SEGS=int(sys.argv[2]),int(sys.argv[3])
for f in range(FLOWS):
    c=[10,0,f>>8&255,f&255]; s=[10,1,0,1]; cp=40000+f
    pkt(c,s,cp,1433,1000,0,0x02); pkt(s,c,1433,cp,5000,1001,0x12); pkt(c,s,cp,1433,1001,5001,0x10)
    for k in range(1,SEGS):
        pkt(s,c,1433,cp,5001+k*1000,1001,0x18,bytes([k&255])*1000)
    pkt(c,s,cp,1433,1001,5001,0x11); pkt(s,c,1433,cp,5001+SEGS*1000,1002,0x11)
open(sys.argv[1],'wb').write(out)
