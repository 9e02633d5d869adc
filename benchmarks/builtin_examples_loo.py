"""Leave-one-out over the built-in examples: plan each request with itself left out of the fixed and the
chosen examples, score node F1 on the tool sets. Usage: python benchmarks/builtin_examples_loo.py ANCHORS N_EXAMPLES"""
from pathlib import Path
import sys, time
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cadenza.agent.llm import get_chat_model
from cadenza.agent.planner import Planner, ExamplePool
from cadenza.agent.taskbench import f1
from cadenza.tools.registry import default_registry
from cadenza.media import Audio, Video, Image
reg=default_registry(); pool=ExamplePool.builtin(); llm=get_chat_model('local')
kinds={"audio":lambda n:Audio(path=Path(n+".wav")),"video":lambda n:Video(path=Path(n+".mp4")),"image":lambda n:Image(path=Path(n+".png"))}
anch, nex = int(sys.argv[1]), int(sys.argv[2])
tp=p=g=0; t0=time.time(); ok=0
for e in pool.examples:
    pl=Planner(llm, reg, pool, anchors=anch, n_examples=nex)
    pl.exclude_from_anchors({e.id})
    files={n:kinds[k](n) for n,k in e.files.items()}
    try:
        out=pl.plan(e.request, files, exclude={e.id}); pred=set(s.tool for s in out.plan.steps) if out.plan else set()
    except Exception as ex:
        pred=set(); print('ERR', ex)
    gold=set(e.tools()); tp+=len(pred&gold); p+=len(pred); g+=len(gold); ok+= pred==gold
    print(e.request[:60], sorted(pred), sorted(gold), flush=True)
print('anchors',anch,'nex',nex,'nF1 %.1f'%f1(tp,p,g),'exact',ok,len(pool.examples),'time',round(time.time()-t0))
