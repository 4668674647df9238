"""The default corpus: seeded, deterministic English-like sentences drawn from twelve topics.

Every content word is strongly predictable from its neighbours because the lexicon is made of
fixed collocations. Each topic has:

* persons, each with two dedicated adjectives and five verbs of its own ("the grumpy chef
  sliced ...": a verb names its person);
* places, each with a preposition and two dedicated adjectives ("in the steamy kitchen");
* nouns, each with two dedicated adjectives, the verbs it goes with and the places it occurs in
  ("banana: yellow mushy | peeled devoured displayed | market kitchen").

A clause is "the [adjective] person verb" followed by one to three noun phrases whose nouns all
go with the verb; a sentence is one or two clauses of one topic, mostly with a place of its
first noun.
Polysemous words are nouns of two topics, with other verbs and places per topic and no
adjectives of their own: they take any adjective of the ordinary nouns of their topic ("a mushy
apple", "a sleek apple"). No adjective belongs to a polysemous word, so what fixes its sense is
the topic of the sentence around it, not a collocation of its own, and that topic is on both
sides of it: words of its topic come before it (the person and the verb) and after it (a place
of that topic, or more of the sentence); no sentence ends on a polysemous noun. The held-out
split comes from the same grammar and shares no sentence with the training split.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

FUNCTION_WORDS: frozenset[str] = frozenset(
    ("the", "a", "an", "in", "of", "and", "with", "to", "at", "on", "from", "by", "then")
)
PUNCTUATION: frozenset[str] = frozenset((".", ","))

# word -> (topic of sense 1, topic of sense 2)
POLYSEMOUS_WORDS: dict[str, tuple[str, str]] = {
    "apple": ("food", "technology"),
    "bank": ("nature", "finance"),
    "bat": ("animals", "sports"),
    "mouse": ("animals", "technology"),
    "bass": ("nature", "music"),
    "crane": ("animals", "construction"),
    "court": ("law", "sports"),
    "pitch": ("sports", "music"),
    "seal": ("animals", "law"),
    "python": ("animals", "technology"),
    "plant": ("nature", "construction"),
    "cell": ("medicine", "law"),
}

# Bump when the grammar below changes: cached corpora with another version are regenerated.
_GENERATOR_VERSION = 3
# Sampling weight of a polysemous noun relative to an ordinary noun of its topic.
_POLYSEMOUS_WEIGHT = 10.0

# One block per topic. Line shapes:
#   "person: adjectives | verbs"                 (a person and the verbs only it performs)
#   "preposition place: adjectives"
#   "noun: adjectives | verbs | places"
#   "polysemous noun: | verbs | places"             (adjectives: see _borrow_adjectives)
_LEXICON_TEXT: dict[str, str] = {
    "food": """
        chef: grumpy portly | sliced diced seasoned roasted marinated
        baker: floury sleepy | kneaded baked glazed sprinkled frosted
        grocer: thrifty jolly | weighed bagged priced restocked displayed
        cook: hurried cheerful | peeled boiled stirred fried simmered
        diner: ravenous picky | tasted devoured savored nibbled ordered
        in kitchen: tidy steamy
        in orchard: sunny leafy
        at market: bustling crowded
        in bakery: cozy fragrant
        in pantry: cluttered chilly
        in restaurant: fancy elegant
        in cafe: quaint tiny
        in canteen: noisy drab
        in grocery: spacious busy
        at picnic: merry outdoor
        apple: | peeled sliced tasted | orchard kitchen
        banana: yellow mushy | peeled devoured displayed | market kitchen
        carrot: crunchy shredded | peeled diced nibbled | kitchen grocery
        potato: starchy lumpy | peeled boiled fried | kitchen pantry
        tomato: plump squishy | sliced diced displayed | market kitchen
        onion: pungent papery | peeled diced fried | kitchen pantry
        garlic: aromatic minced | peeled roasted marinated | kitchen pantry
        bread: crusty stale | baked sliced | bakery cafe
        cake: spongy layered | baked frosted sprinkled | bakery cafe
        cookie: chewy crumbly | baked frosted nibbled | bakery picnic
        pie: flaky homemade | baked sliced ordered | bakery picnic
        dough: sticky elastic | kneaded baked | bakery kitchen
        soup: hearty lukewarm | stirred simmered tasted | kitchen canteen
        stew: thick meaty | stirred simmered seasoned | kitchen canteen
        rice: steamed basmati | boiled stirred | kitchen canteen
        pasta: saucy overcooked | boiled tasted ordered | restaurant kitchen
        cheese: aged smelly | sliced nibbled weighed | market pantry
        butter: unsalted softened | weighed priced | pantry kitchen
        egg: speckled scrambled | boiled fried | kitchen market
        bacon: crispy smoky | fried devoured | kitchen cafe
        sausage: spicy greasy | fried roasted | kitchen picnic
        chicken: tender succulent | roasted seasoned marinated | kitchen restaurant
        steak: rare charred | seasoned savored ordered | restaurant kitchen
        salmon: poached oily | seasoned roasted marinated | restaurant market
        lemon: sour zesty | sliced weighed | market orchard
        orange: seedless tangy | peeled devoured | orchard market
        cherry: sweet pitted | nibbled weighed | orchard market
        pear: grainy bruised | peeled sliced | orchard market
        grape: seedy purple | weighed savored | orchard market
        lettuce: wilted crisp | bagged weighed restocked | grocery market
        cucumber: pickled watery | sliced bagged | grocery market
        pepper: hot stuffed | diced roasted | market kitchen
        mushroom: earthy sauteed | sliced fried | kitchen market
        bean: canned dried | boiled bagged restocked | pantry grocery
        honey: golden runny | tasted priced | pantry market
        sugar: granulated powdered | weighed sprinkled | pantry bakery
        flour: sifted wholemeal | weighed bagged | pantry bakery
        milk: skimmed curdled | boiled priced restocked | pantry grocery
        yogurt: tart creamy | stirred tasted | grocery cafe
        coffee: bitter brewed | stirred savored ordered | cafe restaurant
        tea: herbal steeped | stirred savored | cafe kitchen
        sandwich: toasted soggy | sliced devoured ordered | cafe picnic
        pizza: cheesy sloppy | baked sliced devoured | restaurant cafe
        noodle: stringy slippery | boiled stirred | canteen restaurant
        pancake: fluffy syrupy | fried devoured | cafe kitchen
        muffin: moist sugary | baked glazed frosted | bakery cafe
        doughnut: jammy filled | glazed sprinkled devoured | bakery cafe
        melon: overripe hefty | sliced weighed | market orchard
        peach: fuzzy velvety | peeled sliced | orchard market
        plum: wrinkly unripe | restocked weighed | orchard market
    """,
    "technology": """
        engineer: brilliant overworked | debugged compiled deployed patched benchmarked
        technician: handy certified | repaired installed soldered charged replaced
        programmer: nerdy sleepless | coded refactored forked queried scripted
        admin: paranoid vigilant | configured upgraded encrypted rebooted wiped
        user: impatient curious | clicked downloaded scrolled unplugged streamed
        in office: carpeted airy
        in datacenter: humming windowless
        at startup: trendy chaotic
        in cubicle: cramped beige
        in garage: drafty messy
        at helpdesk: overloaded understaffed
        in showroom: gleaming minimalist
        on campus: sprawling modern
        at hackathon: overnight caffeinated
        in store: flagship packed
        apple: | charged repaired replaced | store office
        mouse: | clicked unplugged replaced | office cubicle
        python: | coded debugged scripted | startup campus
        laptop: lightweight sleek | charged rebooted repaired | office campus
        keyboard: mechanical ergonomic | unplugged repaired replaced | cubicle office
        monitor: widescreen flickering | installed unplugged | cubicle office
        server: virtual redundant | configured rebooted deployed | datacenter startup
        database: relational corrupted | configured queried encrypted | datacenter startup
        router: blinking hacked | configured rebooted installed | office garage
        printer: jammed wheezing | repaired unplugged | office helpdesk
        smartphone: cracked waterproof | charged repaired wiped | store showroom
        tablet: slim backlit | charged scrolled | store showroom
        software: proprietary buggy | installed patched refactored | office startup
        app: mobile addictive | downloaded coded | startup store
        website: responsive static | coded deployed forked | startup office
        browser: bloated outdated | downloaded upgraded | cubicle office
        code: legacy uncommented | refactored debugged compiled forked | startup hackathon
        algorithm: recursive efficient | coded benchmarked | campus hackathon
        compiler: optimizing sluggish | installed upgraded | campus datacenter
        chip: miniature embedded | soldered installed | garage datacenter
        processor: multicore overclocked | benchmarked installed | datacenter garage
        battery: rechargeable drained | charged replaced | store garage
        cable: tangled frayed | unplugged soldered | office garage
        screen: shattered pixelated | repaired replaced | helpdesk store
        password: forgotten secure | encrypted wiped | helpdesk office
        firewall: misconfigured robust | configured upgraded | datacenter office
        network: corporate congested | configured upgraded | office datacenter
        malware: malicious stealthy | patched wiped | helpdesk office
        bug: critical obscure | debugged patched | startup hackathon
        file: compressed hidden | downloaded encrypted queried | office cubicle
        robot: autonomous humanoid | coded repaired | hackathon garage
        drone: remote airborne | charged coded | garage campus
        camera: digital blurry | charged installed | store showroom
        headset: padded bluetooth | charged unplugged | store cubicle
        disk: external fragmented | installed encrypted wiped | datacenter office
        email: unread spammy | downloaded encrypted | office cubicle
        update: automatic mandatory | downloaded installed | office helpdesk
        sensor: infrared faulty | installed soldered | garage campus
        gadget: nifty handheld | charged repaired | showroom store
        console: retro modded | repaired unplugged | garage showroom
        chatbot: conversational multilingual | coded deployed queried | startup hackathon
        kernel: monolithic unstable | compiled patched | datacenter campus
        script: automated clunky | scripted refactored debugged | startup cubicle
        video: viral buffering | streamed downloaded | office cubicle
        podcast: weekly popular | streamed downloaded | office startup
    """,
    "finance": """
        banker: wealthy cautious | lent approved foreclosed financed underwrote
        trader: greedy frantic | bought sold shorted hedged traded
        accountant: precise bookish | audited tallied budgeted reconciled calculated
        investor: savvy shrewd | invested diversified funded valued acquired
        teller: polite friendly | deposited withdrew counted cashed exchanged
        at branch: suburban downtown
        at exchange: frenzied electronic
        in boardroom: paneled stuffy
        at headquarters: global imposing
        at brokerage: online discount
        in treasury: central royal
        at counter: grimy scratched
        in vault: underground armored
        at mint: venerable stately
        at agency: regional bureaucratic
        bank: | audited funded acquired | headquarters branch
        loan: unsecured overdue | approved lent financed | branch agency
        mortgage: adjustable subprime | approved foreclosed underwrote | branch agency
        stock: volatile undervalued | bought sold shorted | exchange brokerage
        bond: municipal sovereign | bought hedged traded | exchange treasury
        share: preferred diluted | bought sold traded | exchange brokerage
        fund: mutual indexed | invested diversified | brokerage boardroom
        account: joint overdrawn | audited reconciled | branch counter
        cheque: postdated uncashed | cashed deposited | counter branch
        cash: petty counterfeit | counted deposited exchanged withdrew | counter vault
        coin: commemorative tarnished | counted valued exchanged | mint vault
        budget: annual balanced | budgeted tallied | boardroom headquarters
        tax: deductible progressive | tallied audited calculated | treasury agency
        invoice: unpaid itemized | tallied reconciled | headquarters counter
        ledger: handwritten thorough | audited reconciled | headquarters vault
        profit: quarterly taxable | tallied invested calculated | boardroom headquarters
        debt: crushing outstanding | financed tallied | treasury agency
        interest: compounded accrued | calculated tallied | branch treasury
        dividend: generous monthly | invested calculated | brokerage boardroom
        asset: liquid toxic | valued hedged acquired | brokerage boardroom
        portfolio: aggressive conservative | diversified hedged | brokerage boardroom
        currency: foreign devalued | bought hedged exchanged | exchange treasury
        dollar: crumpled almighty | counted deposited | counter mint
        salary: modest yearly | budgeted tallied | headquarters boardroom
        pension: underfunded lifelong | funded invested | agency treasury
        insurance: comprehensive lapsed | underwrote funded | agency branch
        credit: revolving excellent | approved lent | branch agency
        deposit: refundable sizable | counted approved | counter branch
        merger: hostile lucrative | financed approved | boardroom headquarters
        receipt: faded duplicate | tallied reconciled | counter headquarters
        price: inflated discounted | valued traded | exchange brokerage
        inflation: runaway persistent | hedged budgeted | treasury exchange
        equity: private leveraged | invested funded acquired | brokerage boardroom
        savings: meager lifetime | deposited invested withdrew | branch counter
        bitcoin: speculative decentralized | bought shorted traded | exchange brokerage
        option: expiring exotic | bought hedged | exchange brokerage
        subsidiary: overseas profitable | acquired financed | headquarters boardroom
        expense: recurring operating | budgeted tallied | headquarters boardroom
    """,
    "nature": """
        ranger: uniformed watchful | patrolled protected cleared restored planted
        hiker: sunburned adventurous | crossed climbed explored photographed descended
        fisherman: grizzled silent | caught hooked netted released gutted
        botanist: bespectacled studious | pruned watered sampled pressed cataloged
        geologist: earnest methodical | measured studied sketched collected surveyed
        by river: swift broad
        by lake: tranquil alpine
        in forest: dense enchanted
        in valley: verdant peaceful
        in meadow: breezy flowery
        on mountain: lofty misty
        in canyon: rocky arid
        in marsh: reedy swampy
        on glacier: icy vast
        at waterfall: thundering cascading
        bank: | crossed patrolled protected | river lake
        bass: | caught hooked released | lake river
        plant: | watered planted pruned | meadow forest
        trout: wriggling freckled | caught netted gutted | river lake
        pike: toothy lurking | caught hooked gutted | lake marsh
        tree: gnarled towering | climbed pruned planted | forest valley
        oak: mighty ancient | climbed sketched | forest meadow
        pine: evergreen resinous | climbed sampled | forest mountain
        fern: feathery shady | sampled pressed cataloged | forest canyon
        moss: damp springy | sampled collected | waterfall marsh
        flower: dainty blooming | watered pressed planted | meadow valley
        rock: jagged mossy | climbed measured | mountain canyon
        pebble: smooth rounded | collected sketched | river waterfall
        boulder: massive precarious | climbed measured | canyon mountain
        stream: babbling shallow | crossed surveyed | valley waterfall
        cliff: steep sheer | climbed descended surveyed | canyon mountain
        cave: gloomy echoing | explored surveyed | canyon mountain
        peak: snowy craggy | climbed photographed descended | mountain glacier
        trail: winding rugged | patrolled explored cleared | forest valley
        grass: lush dewy | watered sampled | meadow valley
        reed: swaying hollow | sampled collected | marsh lake
        lily: white floating | pressed photographed | lake marsh
        seed: dormant windblown | collected planted cataloged | meadow forest
        leaf: fallen crinkly | collected pressed | forest meadow
        log: rotting waterlogged | crossed cleared | forest river
        ice: thin glacial | crossed measured | glacier lake
        snow: powdery deep | crossed measured | mountain glacier
        sunset: glorious crimson | photographed sketched | mountain lake
        rainbow: vivid shimmering | photographed sketched | waterfall valley
        soil: fertile loamy | sampled studied | valley meadow
        fossil: prehistoric fragile | collected studied | canyon mountain
        crystal: glittering translucent | collected studied | canyon mountain
        mineral: crystalline magnetic | studied collected | mountain canyon
        volcano: smoldering extinct | studied photographed surveyed | mountain
        pond: stagnant murky | protected restored patrolled | marsh meadow
        sand: coarse shifting | measured sampled | river canyon
        berry: wild poisonous | collected sampled | forest meadow
        acorn: glossy capped | collected planted | forest meadow
        willow: weeping drooping | pruned sketched | river lake
        carp: bony whiskery | caught netted gutted | lake marsh
    """,
    "sports": """
        coach: demanding veteran | trained drilled benched recruited substituted
        player: talented energetic | kicked dribbled passed tackled blocked
        referee: fussy unpopular | whistled penalized disallowed flagged warned
        batter: confident stocky | swung gripped taped tossed bunted
        groundskeeper: meticulous tanned | mowed rolled lined covered swept
        captain: proud inspiring | lifted hoisted celebrated won retained
        at stadium: cavernous floodlit
        in arena: deafening indoor
        in gym: musty mirrored
        at club: exclusive swanky
        at ballpark: sunlit legendary
        on rink: slick frosty
        in clubhouse: raucous shabby
        on field: soaked trampled
        at academy: renowned junior
        at tournament: international knockout
        bat: | swung gripped taped | ballpark clubhouse
        court: | lined covered swept | club academy
        pitch: | mowed rolled lined | stadium field
        ball: deflated bouncy | kicked dribbled passed | field gym
        puck: rubber frozen | passed blocked | rink arena
        foul: flagrant deliberate | whistled penalized flagged | stadium arena
        penalty: controversial needless | disallowed flagged | stadium field
        opponent: tough unbeaten | tackled blocked warned | stadium field
        striker: prolific speedy | benched recruited substituted | stadium academy
        goalkeeper: lanky agile | trained benched substituted | stadium field
        rookie: promising eager | recruited drilled warned | academy gym
        team: undefeated rival | trained drilled | arena gym
        athlete: elite muscular | trained recruited | gym academy
        trophy: coveted silver | lifted hoisted won | stadium arena
        medal: bronze olympic | won hoisted | arena tournament
        championship: national grueling | won celebrated retained | tournament stadium
        match: thrilling decisive | won celebrated | stadium arena
        victory: stunning lopsided | celebrated won | stadium arena
        jersey: sweaty numbered | tossed lifted | clubhouse stadium
        dumbbell: heavy chromed | lifted gripped | gym club
        baseball: signed autographed | tossed gripped | ballpark clubhouse
        skate: sharpened dull | taped tossed | rink arena
        goal: late equalizing | disallowed celebrated | stadium field
        defender: burly tireless | tackled benched | stadium field
        midfielder: creative versatile | recruited trained | academy stadium
        tackle: reckless crunching | penalized warned | field stadium
        glove: stiff webbed | tossed gripped | ballpark clubhouse
        racket: restrung graphite | swung gripped | club academy
        helmet: dented scuffed | tossed taped | clubhouse ballpark
        net: torn sagging | covered swept | club field
        sprinter: explosive lean | recruited trained | academy stadium
        title: undisputed heavyweight | retained won | tournament arena
        bunt: sacrifice textbook | bunted | ballpark
    """,
    "music": """
        composer: gifted reclusive | composed arranged orchestrated transposed notated
        singer: soulful hoarse | sang hummed belted recorded rehearsed
        musician: tattooed scruffy | strummed plucked tuned amplified improvised
        drummer: frenetic shirtless | thumped tapped banged rattled pounded
        conductor: stern dignified | conducted cued hushed directed signaled
        at concert: sellout unforgettable
        in studio: soundproof dim
        in hall: ornate vaulted
        at opera: sumptuous candlelit
        at festival: rainy jubilant
        at rehearsal: tedious final
        on stage: dark spotlit
        at conservatory: prestigious austere
        in pub: dingy lively
        in cathedral: gothic solemn
        bass: | strummed plucked amplified | studio stage
        pitch: | hummed tuned transposed | rehearsal conservatory
        guitar: acoustic battered | strummed tuned plucked | stage studio
        violin: antique delicate | plucked tuned | conservatory hall
        piano: grand upright | tuned rehearsed | hall conservatory
        drum: booming taut | thumped tapped banged | stage studio
        cymbal: brassy crashing | banged rattled | stage studio
        tambourine: jingling small | rattled tapped | pub festival
        song: catchy melancholy | sang hummed composed | pub concert
        melody: haunting lilting | hummed composed arranged | studio rehearsal
        symphony: unfinished majestic | composed conducted orchestrated | hall concert
        chord: dissonant augmented | strummed arranged transposed | studio rehearsal
        note: sharp sustained | sang hummed notated | rehearsal conservatory
        rhythm: syncopated steady | tapped pounded | studio rehearsal
        beat: pounding funky | tapped thumped | studio pub
        album: debut platinum | recorded arranged | studio festival
        lyric: poignant rhyming | sang composed | studio pub
        choir: angelic robed | conducted hushed cued | cathedral hall
        orchestra: philharmonic touring | conducted hushed directed | hall concert
        band: indie rowdy | cued signaled | pub festival
        trumpet: blaring muted | tuned amplified | stage hall
        flute: breathy silvery | tuned improvised | conservatory hall
        saxophone: sultry jazzy | amplified improvised | pub stage
        harp: celtic gilded | plucked tuned | cathedral hall
        cello: mellow resonant | plucked tuned | conservatory hall
        microphone: cordless crackling | amplified tapped | stage studio
        concerto: virtuosic sweeping | composed conducted | hall concert
        lullaby: soothing drowsy | hummed sang | studio rehearsal
        anthem: stirring patriotic | sang belted | festival concert
        tempo: brisk languid | cued directed signaled | rehearsal hall
        score: orchestral annotated | arranged notated conducted | conservatory hall
        solo: dazzling impromptu | improvised belted | stage festival
        duet: heartfelt romantic | sang rehearsed | concert opera
        harmony: rich vocal | arranged sang | cathedral rehearsal
        ballad: wistful folksy | sang composed recorded | pub festival
        aria: operatic tragic | sang rehearsed | opera
        riff: bluesy distorted | strummed improvised | studio pub
        encore: rousing spontaneous | belted improvised | concert stage
    """,
    "construction": """
        builder: brawny skilled | erected demolished poured stacked built
        carpenter: careful whistling | sawed hammered sanded nailed varnished
        welder: goggled hulking | welded riveted bolted torched fused
        operator: unflappable experienced | lowered towed excavated bulldozed hauled
        architect: visionary ambitious | designed drafted inspected renovated planned
        at site: dusty fenced
        in warehouse: empty derelict
        in factory: clanking polluted
        at quarry: limestone terraced
        in workshop: orderly bright
        at depot: gated outlying
        in yard: weedy enclosed
        in foundry: sweltering fiery
        at sawmill: creaky riverside
        on lot: vacant paved
        crane: | erected lowered towed | site yard
        plant: | erected demolished renovated | site lot
        brick: red crumbling | stacked demolished | site yard
        cement: wet gray | poured stacked | site depot
        concrete: reinforced precast | poured demolished | site factory
        beam: steel structural | welded riveted bolted | site factory
        girder: iron overhead | welded riveted | site foundry
        plank: warped splintered | sawed sanded nailed | sawmill workshop
        lumber: knotty untreated | sawed stacked | sawmill yard
        nail: galvanized bent | hammered nailed | workshop depot
        bolt: threaded corroded | torched welded fused | foundry factory
        wall: plastered crooked | erected demolished built | site lot
        roof: leaky sloped | renovated inspected | site lot
        foundation: sunken solid | poured inspected | site lot
        scaffold: wobbly temporary | erected inspected | site yard
        pipe: copper leaking | welded torched fused | factory depot
        blueprint: revised architectural | drafted designed planned | workshop site
        bridge: suspension arched | designed erected inspected | site
        tower: residential slender | erected drafted built | site lot
        skyscraper: soaring futuristic | designed built planned | site lot
        bulldozer: idle rumbling | towed hauled | yard depot
        trench: narrow flooded | excavated bulldozed | site lot
        gravel: crushed graded | bulldozed hauled excavated | quarry depot
        stone: quarried rough | stacked excavated hauled | quarry yard
        marble: veined polished | sanded excavated | quarry workshop
        tile: ceramic chipped | sanded stacked | workshop warehouse
        window: tinted broken | renovated inspected | site lot
        door: sliding squeaky | sanded hammered varnished | workshop site
        staircase: spiral rickety | renovated inspected built | site lot
        chimney: sooty leaning | demolished inspected | site lot
        ladder: folding extendable | stacked towed | depot warehouse
        generator: diesel portable | towed hauled | site depot
        insulation: itchy thermal | inspected renovated | warehouse site
        asphalt: steaming tarry | poured bulldozed | lot yard
        cabinet: handmade mahogany | sanded varnished | workshop
        fence: picket barbed | built hammered | yard lot
        shed: ramshackle prefab | built demolished | yard lot
        ingot: molten cast | poured hauled | foundry factory
        frame: timber square | nailed planned | workshop site
    """,
    "law": """
        judge: honorable fair | sentenced overruled dismissed adjourned acquitted
        lawyer: eloquent persuasive | argued appealed defended petitioned cited
        officer: alert courageous | arrested handcuffed interrogated seized detained
        clerk: bored diligent | filed stamped notarized affixed archived
        warden: grim unsmiling | locked guarded transferred escorted paroled
        at courthouse: county columned
        in prison: bleak overcrowded
        at precinct: gritty urban
        in courtroom: tense somber
        at firm: powerful established
        in archive: labyrinthine shadowy
        at registry: civic provincial
        at tribunal: military secret
        in penitentiary: state fortified
        in chambers: quiet lamplit
        court: | adjourned petitioned | courthouse tribunal
        seal: | stamped affixed | registry archive
        cell: | locked guarded | prison penitentiary
        case: criminal civil | argued dismissed appealed | courthouse courtroom
        verdict: unanimous guilty | appealed overruled | courtroom courthouse
        contract: binding void | notarized filed | firm registry
        lawsuit: frivolous pending | filed dismissed | courthouse firm
        witness: credible reluctant | interrogated escorted cited | courtroom precinct
        suspect: fleeing wanted | arrested handcuffed interrogated detained | precinct prison
        prisoner: unruly condemned | guarded transferred escorted paroled | prison penitentiary
        defendant: nervous accused | defended sentenced acquitted | courtroom courthouse
        appeal: lengthy urgent | filed argued | courthouse tribunal
        statute: archaic federal | cited argued | archive chambers
        evidence: forensic circumstantial | seized filed archived | precinct courtroom
        warrant: valid unsigned | stamped filed | precinct courthouse
        jury: impartial deadlocked | dismissed | courtroom courthouse
        testimony: sworn contradictory | cited overruled | courtroom tribunal
        deed: forged original | notarized filed archived | registry archive
        document: confidential redacted | stamped archived | archive registry
        thief: sneaky masked | arrested handcuffed detained | precinct prison
        burglar: notorious clumsy | arrested interrogated | precinct prison
        inmate: violent elderly | guarded transferred paroled | penitentiary prison
        subpoena: sealed unexpected | filed stamped | courthouse registry
        license: expired revoked | stamped filed | registry archive
        motion: pretrial emergency | filed overruled | courtroom chambers
        objection: timely vehement | overruled argued | courtroom
        affidavit: written amended | notarized filed | registry chambers
        precedent: relevant controlling | cited argued | chambers archive
        convict: escaped hardened | guarded escorted locked | penitentiary prison
        client: innocent grateful | defended acquitted | firm
        fingerprint: smudged partial | seized archived | precinct archive
        charge: serious trumped | dismissed appealed | courtroom courthouse
        accomplice: shifty alleged | arrested interrogated acquitted | precinct
    """,
    "medicine": """
        doctor: kindly exhausted | diagnosed examined prescribed treated discharged
        nurse: gentle attentive | bandaged injected monitored sterilized comforted
        surgeon: skillful dexterous | removed stitched amputated transplanted implanted
        pharmacist: helpful knowledgeable | dispensed labeled refilled stocked mixed
        pathologist: pale scholarly | stained cultured analyzed sequenced biopsied
        in hospital: teaching public
        in clinic: neighborhood welcoming
        in ward: pediatric geriatric
        in pharmacy: fluorescent spotless
        in laboratory: pristine airtight
        in infirmary: whitewashed spartan
        in ambulance: speeding wailing
        in hospice: serene compassionate
        in sanatorium: hilltop isolated
        in dispensary: rural makeshift
        cell: | cultured stained analyzed | laboratory hospital
        patient: feverish unconscious | diagnosed examined treated discharged | hospital ward
        wound: gaping infected | bandaged stitched | ward clinic
        fever: raging mild | diagnosed treated | clinic ward
        pill: coated chalky | dispensed prescribed | pharmacy dispensary
        vaccine: experimental seasonal | injected prescribed | clinic laboratory
        syringe: sterile disposable | sterilized labeled | clinic ward
        bandage: adhesive bloodstained | stocked labeled | pharmacy ambulance
        heart: enlarged failing | transplanted monitored examined | hospital ward
        kidney: donated diseased | transplanted removed | hospital ward
        lung: collapsed inflamed | examined transplanted | hospital sanatorium
        bone: fractured brittle | examined bandaged | hospital clinic
        tooth: decayed aching | examined removed | clinic
        tumor: benign malignant | removed diagnosed biopsied | hospital laboratory
        blood: clotted venous | analyzed stained | laboratory clinic
        virus: contagious deadly | sequenced cultured | laboratory hospital
        bacteria: resistant harmful | cultured stained | laboratory hospital
        gene: mutant recessive | sequenced analyzed | laboratory hospital
        antibiotic: potent oral | prescribed dispensed mixed | pharmacy clinic
        prescription: illegible renewable | refilled dispensed | pharmacy dispensary
        ointment: medicated topical | stocked mixed | pharmacy dispensary
        scalpel: surgical keen | sterilized stocked | hospital infirmary
        limb: gangrenous mangled | amputated bandaged | hospital infirmary
        artery: clogged narrowed | stitched monitored | hospital ward
        pulse: rapid faint | monitored examined | hospice ambulance
        rash: blotchy scaly | examined diagnosed | clinic infirmary
        infection: bacterial fungal | diagnosed treated | clinic ward
        injury: severe minor | treated bandaged | ambulance clinic
        dose: lethal daily | injected prescribed | pharmacy hospice
        organ: vital damaged | transplanted examined | hospital ward
        tissue: scarred fibrous | stained biopsied analyzed | laboratory hospital
        sample: contaminated fresh | analyzed labeled cultured | laboratory clinic
        newborn: premature jaundiced | monitored examined discharged | ward hospital
        cough: hacking chesty | diagnosed treated | clinic sanatorium
        vitamin: chewable prenatal | dispensed stocked | pharmacy
        pacemaker: cardiac miniaturized | implanted monitored | hospital
        invalid: frail bedridden | comforted monitored | hospice sanatorium
    """,
    "animals": """
        zookeeper: dedicated fearless | fed caged groomed bathed herded
        vet: kind calm | vaccinated neutered splinted dewormed sedated
        zoologist: tenacious respected | tagged tracked observed classified documented
        birdwatcher: amateur enthusiastic | spotted watched sighted glimpsed identified
        trainer: brave daring | tamed rode saddled petted led
        at zoo: metropolitan landscaped
        in jungle: humid overgrown
        on savanna: dry windswept
        in aquarium: giant saltwater
        on farm: rustic hilly
        in sanctuary: safe wooded
        in stable: warm thatched
        in enclosure: large sandy
        in aviary: domed glass
        at reserve: unspoiled expansive
        bat: | tagged tracked observed | sanctuary jungle
        mouse: | caged fed | farm enclosure
        crane: | spotted watched sighted | aviary reserve
        seal: | fed tagged | aquarium zoo
        python: | caged fed tagged | zoo jungle
        lion: roaring maned | fed tracked | savanna zoo
        tiger: prowling bengal | caged tracked | jungle zoo
        elephant: wrinkled tusked | fed bathed | savanna sanctuary
        giraffe: gangly dappled | fed observed | savanna zoo
        zebra: skittish grazing | tracked observed | savanna reserve
        monkey: mischievous chattering | fed caged | jungle zoo
        parrot: talkative colorful | caged groomed | aviary jungle
        eagle: bald fierce | sighted spotted | aviary reserve
        owl: wise hooting | glimpsed sighted | aviary reserve
        horse: galloping chestnut | saddled rode groomed splinted | stable farm
        pony: shaggy stubborn | rode saddled | stable farm
        dog: loyal barking | vaccinated petted splinted | farm sanctuary
        cat: purring stray | neutered vaccinated | sanctuary farm
        cow: dairy mooing | fed groomed herded | farm stable
        pig: squealing hungry | fed bathed | farm sanctuary
        sheep: woolly shorn | herded groomed | farm stable
        goat: bearded nimble | herded petted | farm sanctuary
        rabbit: floppy burrowing | petted caged | farm sanctuary
        frog: croaking slimy | observed tagged documented | jungle reserve
        turtle: leathery lumbering | tagged tracked documented | aquarium reserve
        shark: hammerhead menacing | tagged tracked | aquarium reserve
        dolphin: bottlenose acrobatic | fed tamed | aquarium zoo
        penguin: waddling flightless | fed observed | aquarium zoo
        bear: grizzly hibernating | tracked tagged sedated | reserve sanctuary
        wolf: howling lone | tracked tagged | reserve sanctuary
        fox: sly cunning | spotted glimpsed | reserve farm
        deer: antlered startled | glimpsed spotted | reserve sanctuary
        camel: humped thirsty | rode saddled | savanna zoo
        hawk: circling predatory | sighted spotted identified | aviary reserve
        beetle: iridescent horned | classified observed documented | jungle reserve
        butterfly: fluttering migratory | classified glimpsed identified | jungle reserve
        puppy: cuddly sickly | vaccinated dewormed | farm sanctuary
        kitten: orphaned adorable | dewormed neutered | sanctuary farm
        gorilla: silverback brooding | sedated observed | jungle zoo
        rhino: endangered charging | sedated tracked | savanna reserve
        falcon: peregrine swooping | tamed sighted | aviary reserve
        stallion: untamed spirited | tamed saddled led | stable farm
        donkey: braying sturdy | led herded | farm stable
    """,
    "travel": """
        tourist: jetlagged lost | visited booked toured admired boarded
        pilot: expert licensed | flew landed navigated refueled taxied
        guide: local chatty | guided showed translated recommended described
        porter: strong tired | carried loaded wheeled unpacked delivered
        agent: surly humorless | checked scanned verified confiscated questioned
        at airport: huge domestic
        at station: old deserted
        in hotel: seaside charming
        at harbor: sheltered picturesque
        at terminal: glassy windy
        at resort: beachfront lavish
        at border: disputed militarized
        in hostel: grungy affordable
        on beach: pebbly idyllic
        in city: vibrant walled
        at embassy: palatial consular
        suitcase: overweight zippered | carried loaded unpacked | airport hotel
        luggage: unattended misplaced | carried wheeled confiscated | airport terminal
        passport: diplomatic biometric | checked verified scanned | embassy airport
        ticket: economy printed | booked checked scanned | station airport
        plane: jumbo delayed | flew landed refueled taxied | airport terminal
        jet: supersonic chartered | flew landed refueled | airport terminal
        train: express punctual | booked boarded | station
        ferry: creaking slow | booked boarded | harbor
        yacht: luxurious anchored | navigated boarded refueled | harbor resort
        map: folded tattered | showed recommended | hotel station
        museum: famous historic | visited toured admired | city
        castle: medieval ruined | toured admired visited | city
        monument: iconic weathered | admired visited described | city
        souvenir: tacky cheap | carried unpacked delivered | resort beach
        room: deluxe twin | booked | hotel resort
        reservation: confirmed canceled | booked checked | hotel hostel
        itinerary: hectic detailed | recommended showed described | hotel hostel
        backpack: bulky canvas | carried unpacked | hostel station
        island: tropical secluded | visited toured | beach resort
        route: scenic coastal | navigated recommended described | border city
        flight: connecting nonstop | booked flew | airport terminal
        visa: provisional denied | checked verified questioned | embassy border
        guidebook: illustrated secondhand | translated recommended | hostel station
        tour: walking narrated | guided booked | city
        parcel: wrapped suspicious | delivered scanned confiscated | border airport
        cruise: luxury mediterranean | booked boarded | harbor
        landmark: famed colonial | visited admired described | city
        statue: granite colossal | admired described | city
        tram: rattling antiquated | boarded | city station
        phrasebook: pocket bilingual | translated showed | hostel city
        traveler: weary stranded | guided questioned | station embassy
    """,
    "fashion": """
        tailor: fastidious nearsighted | hemmed altered mended lengthened shortened
        designer: flamboyant acclaimed | styled draped launched showcased customized
        model: glamorous leggy | wore modeled flaunted paraded donned
        shopper: frugal stylish | purchased returned tried browsed picked
        seamstress: deft devoted | sewed embroidered knitted ironed darned
        at boutique: chic upscale
        on runway: illuminated elevated
        in atelier: parisian bohemian
        at mall: gigantic neon
        at outlet: roadside overstocked
        in closet: overflowing mothballed
        in salon: perfumed plush
        at gala: glitzy formal
        in emporium: vintage quirky
        dress: silky strapless | wore modeled hemmed paraded | boutique gala
        gown: flowing sequined | draped wore donned | gala runway
        shirt: starched plaid | ironed hemmed | closet boutique
        skirt: pleated flared | hemmed altered shortened | boutique runway
        jacket: leather quilted | wore tried | mall closet
        coat: woolen hooded | wore returned | closet outlet
        scarf: cashmere paisley | knitted wore | boutique closet
        sweater: chunky oversized | knitted tried darned | closet mall
        jeans: ripped skinny | tried purchased browsed | mall outlet
        trousers: baggy tailored | hemmed lengthened altered | atelier boutique
        suit: pinstriped bespoke | altered wore | atelier gala
        tie: silk knotted | ironed wore | closet boutique
        hat: straw feathered | wore modeled | gala runway
        shoe: suede pointed | tried returned | mall outlet
        boot: laced heeled | tried purchased | outlet mall
        sandal: strappy jeweled | purchased flaunted | boutique mall
        necklace: beaded pearly | flaunted wore | gala boutique
        handbag: monogrammed pricey | flaunted purchased browsed | boutique gala
        belt: studded braided | wore returned | outlet mall
        fabric: woven stretchy | sewed draped | atelier emporium
        cotton: organic breathable | sewed knitted | atelier emporium
        wool: merino scratchy | knitted darned | atelier emporium
        thread: waxed metallic | embroidered sewed | atelier
        button: shiny missing | sewed mended | atelier closet
        zipper: stuck concealed | mended sewed | atelier
        sleeve: puffy lacy | hemmed altered shortened | atelier boutique
        collar: ruffled detachable | ironed mended | atelier closet
        pajamas: flannel comfy | ironed | closet
        lipstick: matte ruby | purchased picked | salon boutique
        perfume: musky floral | purchased picked | boutique salon
        collection: couture autumnal | launched showcased paraded | runway atelier
        outfit: matching casual | styled customized picked | boutique closet
        blouse: satin frilly | ironed embroidered | boutique closet
        vest: tweed fitted | customized altered | atelier boutique
        bracelet: jangly gold | flaunted picked | boutique gala
        trend: fleeting bold | launched showcased | runway salon
        garment: threadbare discarded | mended darned | closet emporium
    """,
}


# --------------------------------------------------------------------------- lexicon


@dataclass(frozen=True)
class Person:
    name: str
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class Place:
    name: str
    preposition: str
    adjectives: tuple[str, ...]


@dataclass(frozen=True)
class Noun:
    name: str
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]
    places: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """The lexicon of one topic, with the look-ups the grammar needs."""

    name: str
    persons: tuple[Person, ...]
    places: tuple[Place, ...]
    nouns: tuple[Noun, ...]
    person_of_verb: dict[str, Person] = field(init=False, repr=False, compare=False)
    nouns_of_verb: dict[str, tuple[Noun, ...]] = field(init=False, repr=False, compare=False)
    place_named: dict[str, Place] = field(init=False, repr=False, compare=False)
    noun_named: dict[str, Noun] = field(init=False, repr=False, compare=False)
    noun_weights: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        person_of_verb = {verb: person for person in self.persons for verb in person.verbs}
        nouns_of_verb = {
            verb: tuple(noun for noun in self.nouns if verb in noun.verbs)
            for verb in person_of_verb
        }
        weights = tuple(
            _POLYSEMOUS_WEIGHT if noun.name in POLYSEMOUS_WORDS else 1.0 for noun in self.nouns
        )
        object.__setattr__(self, "person_of_verb", person_of_verb)
        object.__setattr__(self, "nouns_of_verb", nouns_of_verb)
        object.__setattr__(self, "place_named", {place.name: place for place in self.places})
        object.__setattr__(self, "noun_named", {noun.name: noun for noun in self.nouns})
        object.__setattr__(self, "noun_weights", weights)

    def entries(self) -> Iterator[tuple[str, str]]:
        """(word, role) for every word of the topic, in lexicon order."""
        for person in self.persons:
            yield person.name, "person"
            yield from ((word, "person adjective") for word in person.adjectives)
            yield from ((word, "verb") for word in person.verbs)
        for place in self.places:
            yield place.name, "place"
            yield from ((word, "place adjective") for word in place.adjectives)
        for noun in self.nouns:
            yield noun.name, "noun"
            if noun.name not in POLYSEMOUS_WORDS:  # a polysemous noun's adjectives are borrowed
                yield from ((word, "adjective") for word in noun.adjectives)


def _parse_topic(name: str, text: str) -> Topic:
    persons: list[Person] = []
    places: list[Place] = []
    nouns: list[Noun] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        head, _, body = line.partition(":")
        fields = [tuple(part.split()) for part in body.split("|")]
        if len(fields) == 1:
            preposition, place = head.split()
            places.append(Place(place, preposition, fields[0]))
        elif len(fields) == 2:
            persons.append(Person(head, fields[0], fields[1]))
        else:
            nouns.append(Noun(head, fields[0], fields[1], fields[2]))
    return Topic(name, tuple(persons), tuple(places), _borrow_adjectives(nouns))


def _ordinary_adjectives(nouns: Sequence[Noun]) -> set[str]:
    """Every adjective of the ordinary (not polysemous) nouns among ``nouns``."""
    return {word for noun in nouns if noun.name not in POLYSEMOUS_WORDS for word in noun.adjectives}


def _borrow_adjectives(nouns: Sequence[Noun]) -> tuple[Noun, ...]:
    """Polysemous nouns take the adjectives of every ordinary noun of their topic."""
    borrowed = tuple(sorted(_ordinary_adjectives(nouns)))
    resolved = []
    for noun in nouns:
        if noun.name in POLYSEMOUS_WORDS:
            if noun.adjectives:
                raise ValueError(f"polysemous {noun.name!r} must not list adjectives of its own")
            noun = Noun(noun.name, borrowed, noun.verbs, noun.places)  # noqa: PLW2901
        resolved.append(noun)
    return tuple(resolved)


def lexicon_problems(topics: Sequence[Topic]) -> list[str]:
    """Everything that breaks the lexicon's rules (an empty list for a sound lexicon)."""
    problems: list[str] = []
    uses: dict[str, list[tuple[str, str]]] = {}
    for topic in topics:
        verbs, places = set(topic.person_of_verb), set(topic.place_named)
        for noun in topic.nouns:
            for missing in sorted((set(noun.verbs) - verbs) | (set(noun.places) - places)):
                problems.append(f"{topic.name}: {noun.name} refers to unknown {missing!r}")
            if not (noun.adjectives and noun.verbs and noun.places):
                problems.append(f"{topic.name}: {noun.name} lacks adjectives, verbs or places")
        ordinary = _ordinary_adjectives(topic.nouns)
        for noun in topic.nouns:
            if noun.name in POLYSEMOUS_WORDS and set(noun.adjectives) != ordinary:
                problems.append(
                    f"{topic.name}: polysemous {noun.name} must take exactly the adjectives of "
                    "the topic's ordinary nouns"
                )
        for verb, nouns in topic.nouns_of_verb.items():
            if not nouns:
                problems.append(f"{topic.name}: no noun goes with the verb {verb!r}")
        for word, role in topic.entries():
            uses.setdefault(word, []).append((topic.name, role))
    for word, where in uses.items():
        if not re.fullmatch(r"[a-z]+", word) or word in FUNCTION_WORDS:
            problems.append(f"{word!r} is not a lowercase content word")
        expected = [(topic, "noun") for topic in POLYSEMOUS_WORDS.get(word, ())]
        if len(where) > 1 and sorted(where) != sorted(expected):
            problems.append(f"{word!r} is used more than once: {where}")
    for word, senses in POLYSEMOUS_WORDS.items():
        if sorted(uses.get(word, [])) != sorted((topic, "noun") for topic in senses):
            problems.append(f"polysemous {word!r} must be a noun of exactly {senses}")
    return problems


@cache
def _topics() -> tuple[Topic, ...]:
    topics = tuple(_parse_topic(name, text) for name, text in _LEXICON_TEXT.items())
    problems = lexicon_problems(topics)
    if problems:
        raise ValueError("inconsistent corpus lexicon:\n" + "\n".join(problems))
    return topics


TOPICS: tuple[str, ...] = tuple(topic.name for topic in _topics())


def content_words() -> frozenset[str]:
    """Every lexicon word (polysemous words included): the words evaluation may mask."""
    return frozenset(word for topic in _topics() for word, _ in topic.entries())


def word_topics() -> dict[str, str]:
    """Every content word that is not polysemous -> the one topic it belongs to."""
    return {
        word: topic.name
        for topic in _topics()
        for word, _ in topic.entries()
        if word not in POLYSEMOUS_WORDS
    }


def lexicon_json() -> dict[str, Any]:
    """The lexicon as plain data (written to lexicon.json)."""
    return {
        "topics": {
            topic.name: {
                "persons": [asdict(person) for person in topic.persons],
                "places": [asdict(place) for place in topic.places],
                "nouns": [asdict(noun) for noun in topic.nouns],
            }
            for topic in _topics()
        },
        "polysemous_words": {word: list(senses) for word, senses in POLYSEMOUS_WORDS.items()},
        "function_words": sorted(FUNCTION_WORDS),
    }


# --------------------------------------------------------------------------- grammar


def _noun_phrase(noun: Noun, rng: random.Random) -> list[str]:
    adjective = rng.choice(noun.adjectives)
    article = "an" if adjective[0] in "aeiou" else "a"
    if rng.random() < 0.6:
        article = "the"
    return [article, adjective, noun.name]


def _location(place: Place, rng: random.Random) -> list[str]:
    return [place.preposition, "the", rng.choice(place.adjectives), place.name]


def _clause(topic: Topic, rng: random.Random) -> tuple[list[str], Noun]:
    """Tokens "the [adjective] person verb" plus one to three objects, and the first object.

    A polysemous first object stands alone, so the place of its sense can follow it directly
    (``wanted`` is still drawn, so the random stream does not depend on which noun came first).
    """
    noun = rng.choices(topic.nouns, topic.noun_weights)[0]
    verb = rng.choice(noun.verbs)
    person = topic.person_of_verb[verb]
    others = [other for other in topic.nouns_of_verb[verb] if other is not noun]
    wanted = rng.choices((0, 1, 2), (5, 3, 2))[0]
    extra = 0 if noun.name in POLYSEMOUS_WORDS else min(len(others), wanted)
    phrases = [_noun_phrase(item, rng) for item in (noun, *rng.sample(others, extra))]
    tokens = ["the"]
    if rng.random() < 0.4:
        tokens.append(rng.choice(person.adjectives))
    tokens += [person.name, verb, *phrases[0]]
    for index, phrase in enumerate(phrases[1:], start=2):
        last = index == len(phrases)
        tokens += [rng.choice(("and", "with")) if last else ",", *phrase]
    return tokens, noun


def _sentence(topic: Topic, rng: random.Random) -> list[str]:
    """One or two clauses of ``topic``, with a place of the first object, ending in ".".

    A polysemous noun has its topic on both sides: a polysemous first object is followed
    directly by one of its own places, and no sentence ends on a polysemous noun (one of its
    own places is appended, which may repeat a place named earlier).
    """
    clause, noun = _clause(topic, rng)
    location = _location(topic.place_named[rng.choice(noun.places)], rng)
    polysemous = noun.name in POLYSEMOUS_WORDS
    roll = rng.random()
    if roll < 0.25 and not polysemous:
        tokens = [*location, ",", *clause]
    elif roll < 0.7 or len(clause) < 7 or polysemous:
        tokens = [*clause, *location]
    else:
        tokens = clause
    if rng.random() < 0.35:
        second, other = _clause(topic, rng)
        tokens += [",", rng.choice(("and", "then")), *second]
        places = [name for name in other.places if name not in tokens]
        if places and (rng.random() < 0.3 or other.name in POLYSEMOUS_WORDS):
            tokens += _location(topic.place_named[rng.choice(places)], rng)
    if tokens[-1] in POLYSEMOUS_WORDS:
        last = topic.noun_named[tokens[-1]]
        tokens += _location(topic.place_named[rng.choice(last.places)], rng)
    return [*tokens, "."]


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class SenseOccurrence:
    sentence_index: int  # index into the split's sentences
    token_index: int  # index into sentence.split()
    word: str  # e.g. "apple"
    sense: str  # e.g. "food" (the topic name that fixes the sense)


@dataclass(frozen=True)
class CorpusSplit:
    sentences: list[str]  # each a space-separated, lowercase sentence ending with " ."
    topics: list[str]  # topic of each sentence
    senses: list[SenseOccurrence]  # every occurrence of a polysemous word in this split


@dataclass(frozen=True)
class Corpus:
    seed: int
    train: CorpusSplit
    heldout: CorpusSplit

    def vocabulary(self) -> list[str]:
        """Sorted distinct tokens of the training split."""
        return sorted({token for sentence in self.train.sentences for token in sentence.split()})


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 13
    train_tokens: int = 1_000_000  # generate sentences until at least this many tokens
    heldout_sentences: int = 2_000


class _SplitBuilder:
    """Accumulates sentences of one split with their topics and polysemous occurrences."""

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.topics: list[str] = []
        self.senses: list[SenseOccurrence] = []
        self.tokens = 0

    def add(self, topic: str, tokens: list[str]) -> None:
        index = len(self.sentences)
        self.senses += [
            SenseOccurrence(index, position, token, topic)
            for position, token in enumerate(tokens)
            if token in POLYSEMOUS_WORDS
        ]
        self.sentences.append(" ".join(tokens))
        self.topics.append(topic)
        self.tokens += len(tokens)

    def build(self) -> CorpusSplit:
        return CorpusSplit(self.sentences, self.topics, self.senses)


def generate_corpus(config: CorpusConfig = CorpusConfig()) -> Corpus:
    """The corpus of ``config``: identical for identical configs, on every machine."""
    topics = _topics()
    rng = random.Random(config.seed)
    train = _SplitBuilder()
    while train.tokens < config.train_tokens:
        topic = rng.choice(topics)
        train.add(topic.name, _sentence(topic, rng))
    seen = set(train.sentences)
    rng = random.Random(f"heldout-{config.seed}")
    heldout = _SplitBuilder()
    for _ in range(100 * config.heldout_sentences + 1000):
        if len(heldout.sentences) >= config.heldout_sentences:
            break
        topic = rng.choice(topics)
        tokens = _sentence(topic, rng)
        sentence = " ".join(tokens)
        if sentence not in seen:
            seen.add(sentence)
            heldout.add(topic.name, tokens)
    else:
        raise RuntimeError("could not draw enough held-out sentences unseen in training")
    return Corpus(config.seed, train.build(), heldout.build())


# --------------------------------------------------------------------------- files


def _fingerprint() -> str:
    lexicon = json.dumps(lexicon_json(), sort_keys=True)
    return hashlib.sha256(f"{_GENERATOR_VERSION}:{lexicon}".encode()).hexdigest()


def _meta(corpus: Corpus) -> dict[str, Any]:
    train = corpus.train.sentences
    tokens = sum(len(sentence.split()) for sentence in train)
    last = len(train[-1].split()) if train else 0
    return {
        "seed": corpus.seed,
        "generator": _fingerprint(),
        "train_sentences": len(train),
        "train_tokens": tokens,
        # Generation stops at the first sentence that reaches the token target, so every
        # target in [train_tokens_min, train_tokens] yields exactly this training split.
        "train_tokens_min": tokens - last + 1,
        "heldout_sentences": len(corpus.heldout.sentences),
        "distinct_train_words": len(corpus.vocabulary()),
    }


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_corpus(corpus: Corpus, directory: Path) -> None:
    """Write both splits, their topics and senses, the lexicon and meta.json (last)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", corpus.train), ("heldout", corpus.heldout)):
        _write_lines(directory / f"{name}.txt", split.sentences)
        _write_lines(directory / f"{name}_topics.txt", split.topics)
        _write_lines(
            directory / f"senses_{name}.jsonl", [json.dumps(asdict(s)) for s in split.senses]
        )
    (directory / "lexicon.json").write_text(json.dumps(lexicon_json(), indent=1), encoding="utf-8")
    (directory / "meta.json").write_text(json.dumps(_meta(corpus), indent=2), encoding="utf-8")


def _read_split(directory: Path, name: str) -> CorpusSplit:
    sentences = _read_lines(directory / f"{name}.txt")
    topics = _read_lines(directory / f"{name}_topics.txt")
    senses = [
        SenseOccurrence(**json.loads(line))
        for line in _read_lines(directory / f"senses_{name}.jsonl")
    ]
    if len(topics) != len(sentences):
        raise ValueError(
            f"{directory}: {name} has {len(sentences)} sentences, {len(topics)} topics"
        )
    return CorpusSplit(sentences, topics, senses)


def read_corpus(directory: Path) -> Corpus:
    """The corpus that ``write_corpus`` wrote to ``directory``."""
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    return Corpus(
        int(meta["seed"]), _read_split(directory, "train"), _read_split(directory, "heldout")
    )


def _matches(directory: Path, config: CorpusConfig) -> bool:
    try:
        meta: dict[str, Any] = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        meta.get("seed") == config.seed
        and meta.get("generator") == _fingerprint()
        and meta.get("heldout_sentences") == config.heldout_sentences
        and meta.get("train_tokens_min", 0) <= config.train_tokens <= meta.get("train_tokens", -1)
    )


def load_or_generate(directory: Path, config: CorpusConfig = CorpusConfig()) -> Corpus:
    """The corpus cached in ``directory`` if it was made from ``config``; else generate it."""
    if _matches(directory, config):
        return read_corpus(directory)
    corpus = generate_corpus(config)
    write_corpus(corpus, directory)
    return corpus
